"""The service's cosign-compatible key pair.

``cosign.key`` uses the format ``cosign generate-key-pair`` writes: a PEM block of type
``ENCRYPTED SIGSTORE PRIVATE KEY`` whose body is JSON::

    {"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": <b64>},
     "cipher": {"name": "nacl/secretbox", "nonce": <b64>},
     "ciphertext": <b64 of secretbox(PKCS#8 DER of the ECDSA P-256 key)>}

The secretbox key is ``scrypt(password, salt, N, r, p, 32)``; the password comes from
``COSIGN_PASSWORD``, as it does for cosign. ``cosign.pub`` is the PEM SubjectPublicKeyInfo.

Signatures are ECDSA P-256 over SHA-256, DER-encoded: the bytes ``cosign sign-blob`` base64-encodes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tasks import bundle_verifier
from tasks.errors import CodedError
from tasks.settings import Settings

log = logging.getLogger(__name__)

PRIVATE_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
PASSWORD_ENV = "COSIGN_PASSWORD"  # noqa: S105 - the variable name, not a password
KEY_FILE = "cosign.key"
PUB_FILE = "cosign.pub"

# cosign's defaults; N = 2**15..2**20 accepted when reading keys written with other parameters.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 65536, 8, 1
_MAX_SCRYPT_N = 1 << 20


class SigningKeyError(CodedError):
    """A key cannot be read, decrypted or used. ``code`` is stable for error reports."""


# -- PEM helpers --------------------------------------------------------------------------------
def _pem_block(pem: bytes | str) -> tuple[str, bytes]:
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) < 3 or not lines[0].startswith("-----BEGIN ") or not lines[-1].startswith("-----END "):
        raise SigningKeyError("key_unreadable", "not a PEM block")
    kind = lines[0][len("-----BEGIN "):].rstrip("-").strip()
    end = lines[-1][len("-----END "):].rstrip("-").strip()
    if kind != end:
        raise SigningKeyError("key_unreadable", "PEM BEGIN and END lines differ")
    try:
        body = base64.b64decode("".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SigningKeyError("key_unreadable", "PEM body is not base64") from exc
    return kind, body


def _to_pem(kind: str, body: bytes) -> bytes:
    b64 = base64.b64encode(body).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]) + "\n").encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise SigningKeyError("key_unreadable", f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SigningKeyError("key_unreadable", f"{what} is not base64") from exc


def _kdf(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=nacl.secret.SecretBox.KEY_SIZE,
                          maxmem=256 * r * n + (1 << 20))


# -- encrypted private keys ---------------------------------------------------------------------
def encrypt_private_key(key: ec.EllipticCurvePrivateKey, password: str | bytes) -> bytes:
    """``cosign.key`` text for ``key``, encrypted with ``password`` (may be empty, as in cosign)."""
    pw = password.encode() if isinstance(password, str) else password
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt = secrets.token_bytes(32)
    nonce = secrets.token_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_kdf(pw, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    ciphertext = box.encrypt(der, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}, "salt": _b64(salt)},
           "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
           "ciphertext": _b64(ciphertext)}
    return _to_pem(PRIVATE_PEM_TYPES[0], json.dumps(doc, separators=(",", ":")).encode())


def decrypt_private_key(pem: bytes | str, password: str | bytes) -> ec.EllipticCurvePrivateKey:
    kind, body = _pem_block(pem)
    if kind not in PRIVATE_PEM_TYPES:
        raise SigningKeyError("key_unreadable", f"expected an encrypted cosign private key, found {kind!r}")
    try:
        doc = json.loads(body)
        kdf, cipher = doc["kdf"], doc["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SigningKeyError("key_unreadable", "the encrypted key's JSON is malformed") from exc
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise SigningKeyError("key_unreadable", "unsupported key encryption (expected scrypt + nacl/secretbox)")
    if n < 2 or n & (n - 1) or n > _MAX_SCRYPT_N or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise SigningKeyError("key_unreadable", "scrypt parameters out of range")
    salt = _unb64(kdf.get("salt"), "kdf salt")
    nonce = _unb64(cipher.get("nonce"), "cipher nonce")
    ciphertext = _unb64(doc.get("ciphertext"), "ciphertext")
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise SigningKeyError("key_unreadable", "the secretbox nonce has the wrong length")
    pw = password.encode() if isinstance(password, str) else password
    try:
        der = nacl.secret.SecretBox(_kdf(pw, salt, n, r, p)).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError as exc:
        raise SigningKeyError("key_password_wrong", "cannot decrypt the key: wrong password (COSIGN_PASSWORD)") from exc
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError as exc:
        raise SigningKeyError("key_unreadable", "the decrypted key is not PKCS#8") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError("key_unsupported", "only ECDSA P-256 keys are supported")
    return key


# -- public keys and signatures ------------------------------------------------------------------
def public_pem(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes | str) -> ec.EllipticCurvePublicKey:
    try:
        return bundle_verifier.load_public_key(pem)
    except bundle_verifier.VerifyError as exc:
        raise SigningKeyError(exc.code, exc.message) from exc


def key_id(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """A stable fingerprint: hex sha256 of the DER SubjectPublicKeyInfo."""
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def sign_bytes(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256 / SHA-256 signature over ``data``, DER-encoded."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_bytes(public_key: ec.EllipticCurvePublicKey | bytes | str, data: bytes, signature: bytes) -> bool:
    key = public_key if isinstance(public_key, ec.EllipticCurvePublicKey) else load_public_key(public_key)
    return bundle_verifier.signature_valid(key, data, signature)


def decode_signature(text: bytes | str) -> bytes:
    """A signature as ``cosign sign-blob`` writes it (base64 of DER, maybe with a trailing newline)."""
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    try:
        return base64.b64decode("".join(raw.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SigningKeyError("signature_malformed", "the signature is not base64") from exc


# -- the service's key pair ----------------------------------------------------------------------
@dataclass(frozen=True)
class Signer:
    """The service's private key, with the public key users verify against."""

    private_key: ec.EllipticCurvePrivateKey
    key_path: Path
    public_key_path: Path

    @property
    def public_key_pem(self) -> bytes:
        return public_pem(self.private_key)

    @property
    def key_id(self) -> str:
        return key_id(self.private_key)

    def sign(self, data: bytes) -> bytes:
        return sign_bytes(self.private_key, data)

    def sign_base64(self, data: bytes) -> str:
        """What ``cosign sign-blob --key`` prints for the same data."""
        return _b64(self.sign(data))


def password_from_env(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(PASSWORD_ENV, "")


def generate_key_pair(directory: Path, password: str) -> tuple[Path, Path]:
    """Write ``cosign.key`` and ``cosign.pub`` into ``directory``; an existing key is never replaced.

    Several workers may start at once: the key is written to a temporary file and hard-linked into
    place, so exactly one key wins and everybody loads that one.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = directory / KEY_FILE
    if not key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        fd, tmp = tempfile.mkstemp(prefix=".cosign-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(encrypt_private_key(key, password))
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, key_path)
                log.info("generated a new signing key pair in %s", directory)
            except FileExistsError:
                pass  # another process won the race; use its key
        finally:
            os.unlink(tmp)
    key = decrypt_private_key(key_path.read_bytes(), password)
    pub_path = directory / PUB_FILE
    _write_public(pub_path, key)
    return key_path, pub_path


def _write_public(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = public_pem(key)
    if path.exists() and path.read_bytes() == pem:
        return
    fd, tmp = tempfile.mkstemp(prefix=".cosign-pub-", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _ref_path(ref: str) -> Path:
    if ref.startswith("file://"):
        ref = ref[len("file://"):]
    if "://" in ref:
        raise SigningKeyError("key_ref_unsupported", f"key references of this kind are not supported: {ref.split('://')[0]}")
    return Path(ref).expanduser()


def load_signer(settings: Settings, environ: dict[str, str] | None = None) -> Signer:
    """The service's signer: ``COSIGN_KEY_REF`` when set, else a key pair under ``SIGNING_KEY_DIR``,
    generated on first use. ``cosign.pub`` is (re)written next to a generated key; for a configured
    key it is read from beside the key when present and must match, else derived from the key."""
    password = password_from_env(environ)
    if settings.cosign_key_ref:
        key_path = _ref_path(settings.cosign_key_ref)
        try:
            pem = key_path.read_bytes()
        except OSError as exc:
            raise SigningKeyError("key_missing", f"cannot read the signing key {key_path}: {exc.strerror}") from exc
        key = decrypt_private_key(pem, password)
        pub_path = key_path.with_name(PUB_FILE)
        if pub_path.exists():
            if load_public_key(pub_path.read_bytes()).public_numbers() != key.public_key().public_numbers():
                raise SigningKeyError("key_mismatch", f"{pub_path} does not belong to {key_path}")
        return Signer(key, key_path, pub_path)
    directory = Path(settings.signing_key_dir)
    if not password:
        log.warning("COSIGN_PASSWORD is not set: the signing key is stored with an empty password")
    try:
        key_path, pub_path = generate_key_pair(directory, password)
    except OSError as exc:
        raise SigningKeyError("key_dir_unusable", f"cannot create or read the key pair in {directory}: "
                                                  f"{exc.strerror or exc.__class__.__name__}") from exc
    return Signer(decrypt_private_key(key_path.read_bytes(), password), key_path, pub_path)


def load_verification_key(ref: str) -> ec.EllipticCurvePublicKey:
    """A public key from a file path (or ``file://`` path) holding a PEM public key, such as cosign.pub."""
    path = _ref_path(ref)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError("key_missing", f"cannot read the public key {path}: {exc.strerror}") from exc
    return load_public_key(data)
