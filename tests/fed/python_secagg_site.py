#!/usr/bin/env python3
"""A fedlora site that takes part in secure aggregation (Bonawitz et al. 2017) beside real
fedlora-client sites, written from the protocol's description with another stack: grpcio, Google's
protobuf runtime (messages from `protoc --python_out`), Python's `cryptography` (X25519, HKDF-SHA256,
ChaCha20-Poly1305, the ChaCha20 stream, ECDSA/RSA/Ed25519 signatures, x509) and its own Shamir
sharing over GF(2^8) and fixed-point encoding. Nothing of fedlora's C code is on this side.

  python_secagg_site.py --server HOST:PORT --ca CA --cert CERT --key KEY --proto fedlora.proto \
                        --base BASE_DIR --examples N --state SITE_STATE_DIR [--name alpha]

The protocol as this site runs it (common/secagg_protocol.h, docs/privacy.md):
  - sites are numbered by their position in the task's sorted secagg_sites; site k's Shamir shares
    are evaluated at x = k + 1, one polynomial per byte over GF(2^8) mod x^8 + x^4 + x^3 + x + 1;
  - stage 0: two fresh X25519 pairs (c: seals shares, s: pairwise masks), their public keys signed
    with the site's TLS key over "fedlora-secagg-advert" NUL ‖ run NUL ‖ round (u32 LE) ‖ name NUL ‖
    c_pk ‖ s_pk; a relayed advert counts only if its certificate chains to the CA, its CN is the
    advertised site's name and the signature verifies;
  - stage 1: s_sk and a fresh 32-byte self-mask seed b are split (threshold t); the share for j is
    x ‖ share(s_sk) ‖ share(b) sealed with ChaCha20-Poly1305 under HKDF-SHA256 (no salt) of
    X25519(c_sk, c_pk_j) with info "fedlora-secagg-share" NUL ‖ run NUL ‖ round ‖ lower name NUL ‖
    higher name NUL, nonce = the sender's index in byte 0, AAD = round ‖ sender NUL ‖ recipient NUL;
  - stage 2: y = q(v) + PRG(b) + Σ_j ±PRG(s_ij) mod 2^32 over the peers whose shares reached this
    site, + when this site's index is below j; s_ij = HKDF(X25519(s_sk, s_pk_j), "fedlora-secagg-mask"
    ‖ same info); PRG(seed) = ChaCha20 keystream (key = seed, nonce 0, counter 0) as little-endian
    u32 words; v = [w·range, w·x] with x = (update − global) followed by the 4 loss coordinates
    [range, range·train/64, range, range·val/64], clipped to ±range; q = stochastic rounding of
    v·scale; w = declared examples / secagg_weight_scale;
  - stage 3: per site of U2 (this one included), the share of b for a survivor, of s_sk for a
    dropped site, NONE for a site that never shared; refused when U3 is not within U2, lacks this
    site or is below t.
Each round's update is kept as a fedlora site keeps it (STATE/updates/rNNNN-<digest16>.bin: the
float32 payload, then 6 little-endian doubles) for tests/fed/check_secagg.py. Every check prints
"ok   ..." or "FAIL ..."; the exit status is the number of failures."""
import argparse
import datetime
import hashlib
import json
import math
import os
import secrets
import struct
import sys
import time

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from wire_peer import (SECONDS, STEPS, TRAIN_LOSS, VAL_LOSS, Checks, fingerprint, keep_update, load_messages,
                       make_update, method, receive_chunks, send_chunks, site_channel)

check = Checks()
LOSS_MAX = 64.0
METRIC_WORDS = 4
MAX_SITES = 100
NONE, MASK_KEY, SELF_SEED = 0, 1, 2
# an aggregator restarting or unreachable: the attempt is over for this site, not a refusal
TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


def info(msg):
    print(f"     {msg}", flush=True)


class Refused(Exception):
    """The aggregator (or a peer through it) broke the protocol: this site stops, revealing nothing."""


class Gone(Exception):
    """The attempt is over (FAILED_PRECONDITION) or the aggregator is unreachable: back to AwaitRound."""


# ------------------------------------------------------------------ GF(2^8) and Shamir

def gf_mul(a, b):
    p = 0
    for _ in range(8):
        if b & 1:
            p ^= a
        b >>= 1
        a <<= 1
        if a & 0x100:
            a ^= 0x11B  # x^8 + x^4 + x^3 + x + 1
    return p


def gf_inv(a):
    r = 1
    for _ in range(254):  # a^254 = a^-1
        r = gf_mul(r, a)
    return r


def shamir_split(secret, xs, t):
    """Shares of each byte of secret at the given points: {x: bytes}."""
    coef = [secrets.token_bytes(len(secret)) for _ in range(t - 1)]
    out = {}
    for x in xs:
        y = bytearray(len(secret))
        for b in range(len(secret)):
            acc = 0
            for k in reversed(range(t - 1)):  # Horner: ((c_{t-1} x + c_{t-2}) x + ... + c_1) x
                acc = gf_mul(acc ^ coef[k][b], x)
            y[b] = acc ^ secret[b]
        out[x] = bytes(y)
    return out


def shamir_recover(shares):
    """The secret from {x: bytes}, by Lagrange interpolation at 0."""
    xs = list(shares)
    n = len(next(iter(shares.values())))
    acc = bytearray(n)
    for i in xs:
        num = den = 1
        for j in xs:
            if j != i:
                num = gf_mul(num, j)
                den = gf_mul(den, j ^ i)
        basis = gf_mul(num, gf_inv(den))
        for b in range(n):
            acc[b] ^= gf_mul(basis, shares[i][b])
    return bytes(acc)


# ------------------------------------------------------------------ derivations

def cstr(s):
    return s.encode() + b"\0"


def u32(v):
    return struct.pack("<I", v)


def raw_pub(key):
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def pair_key(purpose, sk, peer_pk, run, rnd, a, b):
    """HKDF-SHA256(X25519(sk, peer_pk), info = purpose ‖ run ‖ round ‖ both names sorted)."""
    shared = sk.exchange(x25519.X25519PublicKey.from_public_bytes(peer_pk))
    lo, hi = sorted((a, b))
    info_ = cstr(purpose) + cstr(run) + u32(rnd) + cstr(lo) + cstr(hi)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info_).derive(shared)


def advert_message(run, rnd, name, c_pk, s_pk):
    return cstr("fedlora-secagg-advert") + cstr(run) + u32(rnd) + cstr(name) + c_pk + s_pk


def share_aad(rnd, sender, recipient):
    return u32(rnd) + cstr(sender) + cstr(recipient)


def share_nonce(sender_index):
    return bytes([sender_index]) + bytes(11)


def prg(seed, words):
    """The mask of a seed: ChaCha20 keystream, key = seed, counter 0, nonce 0, as LE u32 words."""
    enc = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
    return struct.unpack(f"<{words}I", enc.update(bytes(4 * words)))


def add_mask(y, seed, sign):
    for i, m in enumerate(prg(seed, len(y))):
        y[i] = (y[i] + sign * m) & 0xFFFFFFFF


def quantize(v, rng, scale):
    """Stochastic rounding of clip(v)·scale, as the two's complement u32."""
    out = []
    for x in v:
        s = min(max(x, -rng), rng) * scale
        low = math.floor(s)
        q = low + (1 if secrets.randbelow(1 << 53) / float(1 << 53) < s - low else 0)
        out.append(q & 0xFFFFFFFF)
    return out


# ------------------------------------------------------------------ signatures and certificates

def sign(key, msg):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(msg, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(msg)
    raise Refused(f"the site's key is a {type(key).__name__}, which fedlora does not sign with")


def verify_sig(pub, sig, msg, hash_alg=None):
    """True if sig is pub's signature of msg (SHA-256 unless the certificate names another hash)."""
    h = hash_alg or hashes.SHA256()
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(sig, msg, ec.ECDSA(h))
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(sig, msg, padding.PKCS1v15(), h)
        elif isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(sig, msg)
        else:
            return False
        return True
    except (InvalidSignature, ValueError):
        return False


def load_certs(pem):
    """Every certificate of a PEM text (cryptography 38 reads one at a time)."""
    end = b"-----END CERTIFICATE-----"
    parts = [p + end for p in pem.split(end) if b"-----BEGIN CERTIFICATE-----" in p]
    if not parts:
        raise ValueError("no certificate in the PEM text")
    return [x509.load_pem_x509_certificate(p) for p in parts]


def is_ca(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def chain_ok(pem, cas):
    """(CN, None) if the first certificate of pem chains (through any others in pem) to one of cas,
    each link within its validity period and signed by its issuer; else (None, why)."""
    try:
        certs = load_certs(pem.encode())
    except ValueError as e:
        return None, f"unreadable certificate ({e})"
    now = datetime.datetime.utcnow()
    cur, pool = certs[0], certs[1:]
    for _ in range(8):
        if not cur.not_valid_before <= now <= cur.not_valid_after:
            return None, f"'{cur.subject.rfc4514_string()}' is outside its validity period"
        issuers = [c for c in cas + pool if c.subject == cur.issuer and is_ca(c)]
        signed_by = next((c for c in issuers if verify_sig(c.public_key(), cur.signature, cur.tbs_certificate_bytes,
                                                           cur.signature_hash_algorithm)), None)
        if signed_by is None:
            return None, f"no CA certificate signed '{cur.subject.rfc4514_string()}'"
        if signed_by in cas:
            if not signed_by.not_valid_before <= now <= signed_by.not_valid_after:
                return None, "the CA certificate is outside its validity period"
            cn = certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if len(cn) != 1:
                return None, "the certificate has no single CN"
            return cn[0].value, None
        cur = signed_by
        pool = [c for c in pool if c is not cur]
    return None, "the chain is too long"


# ------------------------------------------------------------------ the site

class Site:
    def __init__(self, a, pb):
        self.a, self.pb = a, pb
        self.channel = site_channel(a.server, a.ca, a.cert, a.key)
        self.cert_pem = open(a.cert).read()
        self.tls_key = serialization.load_pem_private_key(open(a.key, "rb").read(), password=None)
        self.cas = load_certs(open(a.ca, "rb").read())
        self.last_round = 0
        self.rounds_done = []

    def unary(self, name, req, resp_type, timeout=60):
        return method(self.channel, name, type(req), resp_type)(req, timeout=timeout)

    @staticmethod
    def in_attempt(call, what, refusal, stop):
        """call() within a secagg attempt: FAILED_PRECONDITION (the attempt is over) or an unreachable
        aggregator end the attempt for this site (Gone: what); anything else is a refusal of what it
        sent (FAIL refusal, then Refused: stop)."""
        try:
            return call()
        except grpc.RpcError as e:
            if e.code() in TRANSIENT or e.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise Gone(f"{what}: {e.code().name} '{e.details()}'")
            check(False, f"{refusal}: {e.code().name} '{e.details()}'")
            raise Refused(stop)

    def stage_call(self, name, req, resp_type, what):
        """A unary call of a secagg stage (in_attempt)."""
        return self.in_attempt(lambda: self.unary(name, req, resp_type), what,
                               f"{what}: the aggregator refused it", what)

    def poll(self, name, resp_type, what, seconds=180):
        req = self.pb.SecAggPoll(round=self.task.round, attempt=self.task.attempt)
        deadline = time.time() + seconds
        while time.time() < deadline:
            m = self.stage_call(name, req, resp_type, what)
            if m.ready:
                return m
        raise Gone(f"{what}: not ready within {seconds} s")

    def join(self, first):
        deadline = time.time() + 120
        while True:
            try:
                plan = self.unary("Join", self.pb.JoinRequest(
                    base_model_fingerprint=fingerprint(self.a.base), train_examples=self.a.examples, val_examples=10,
                    client_version="python-secagg-site"), self.pb.JoinResponse, timeout=30)
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.time() > deadline:
                    check(False, f"join: {e.code().name} '{e.details()}'")
                    raise Refused("join")
                time.sleep(0.5)
        if first:
            p = plan.privacy
            check(plan.site == self.a.name and p.secagg and p.secagg_clip_range > 0 and p.secagg_scale > 0,
                  f"joined as '{plan.site}' in run {plan.run_id}: secagg on, range {p.secagg_clip_range:g}, "
                  f"scale {p.secagg_scale:g}, {plan.rounds.total_rounds} round(s)")
            if plan.site != self.a.name or not p.secagg:
                raise Refused("join")
            self.plan = plan
        elif plan.run_id != self.plan.run_id:
            check(False, f"joined again, but the run is now {plan.run_id}, not {self.plan.run_id}")
            raise Refused("join")

    def fetch(self, round_):
        def out_of_order(i, c, offset):
            raise Refused(f"download of round {round_}: chunk {i} at {c.offset} (want {offset}), header "
                          f"{'missing' if i == 0 else 'repeated'}")

        call = method(self.channel, "DownloadAdapter", self.pb.DownloadRequest, self.pb.Chunk, "unary_stream")
        return receive_chunks(call(self.pb.DownloadRequest(round=round_), timeout=60), out_of_order)[:2]

    # ---- the run

    def run(self):
        self.join(True)
        deadline = time.time() + self.a.timeout
        backoff = 0.25
        while time.time() < deadline:
            try:
                task = self.unary("AwaitRound", self.pb.AwaitRoundRequest(last_round=self.last_round), self.pb.RoundTask)
            except grpc.RpcError as e:
                info(f"AwaitRound: {e.code().name} '{e.details()}'; retrying")
                time.sleep(backoff)
                backoff = min(backoff * 2, 4)
                if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION):
                    self.join(False)
                continue
            backoff = 0.25
            if task.kind == self.pb.RoundTask.FINISHED:
                return self.finish(task)
            if task.kind != self.pb.RoundTask.TRAIN:
                continue
            try:
                self.round(task)
            except grpc.RpcError as e:  # the adapter's download (the stages' calls raise Gone or Refused)
                if e.code() not in TRANSIENT:
                    check(False, f"round {task.round}: {e.code().name} '{e.details()}'")
                    raise Refused("round")
                info(f"round {task.round} attempt {task.attempt}: {e.code().name} '{e.details()}'; back to AwaitRound")
                time.sleep(0.5)
            except Gone as e:
                info(f"round {task.round} attempt {task.attempt}: {e}; back to AwaitRound")
                time.sleep(0.5)
        check(False, f"the run did not finish within {self.a.timeout} s")

    def finish(self, task):
        check(task.final_round == task.round == task.base_round == self.last_round and task.manifest,
              f"the run finished at round {task.final_round} (this site last took part in {self.last_round}), "
              f"with a manifest")
        header, final = self.fetch(task.final_round)
        check(hashlib.sha256(final).digest() == task.adapter_sha256 == header.sha256,
              f"the final adapter ({len(final)} bytes) hashes to the task's digest")
        with open(os.path.join(self.a.state, "final.bin"), "wb") as f:
            f.write(final)

    def round(self, task):
        pb = self.pb
        self.task = task
        tag = f"round {task.round} attempt {task.attempt}"
        names = list(task.secagg_sites)
        n, t = len(names), task.secagg_threshold
        check(n > 0 and t > 0, f"{tag}: a TRAIN task with secagg fields: sites {names}, threshold {t}, "
                               f"weight scale {task.secagg_weight_scale}")
        # the manifest is the aggregator's signed word for the task; its body must agree with it
        try:
            body = json.loads(json.loads(task.manifest)["body"])
            agrees = (body.get("run_id") == self.plan.run_id and body.get("round") == task.round and
                      body.get("attempt") == task.attempt and body.get("base_round") == task.base_round and
                      body.get("adapter_sha256") == task.adapter_sha256.hex())
        except (ValueError, KeyError, TypeError) as e:
            body, agrees = None, False
            info(f"{tag}: manifest unreadable: {e}")
        check(bool(task.manifest) and agrees, f"{tag}: the manifest ({len(task.manifest)} bytes) is present and "
                                               f"names the task's run, round, attempt, base round and adapter")
        if not names or not task.manifest:
            raise Refused("task")
        rng, scale = self.plan.privacy.secagg_clip_range, self.plan.privacy.secagg_scale
        # the parameters an honest aggregator sends (secagg_params_check); refused before any key
        problems = []
        if not 2 <= n <= MAX_SITES:
            problems.append(f"{n} sites")
        if not (2 <= t <= n and 2 * t > n):
            problems.append(f"threshold {t} of {n} (must be above half the sites)")
        if any(names[k - 1] >= names[k] for k in range(1, n)):
            problems.append("names not sorted and distinct")
        if self.a.name not in names:
            problems.append(f"'{self.a.name}' not among them")
        if n * math.ceil(rng * scale) > 2 ** 31 - 1:
            problems.append("the 32-bit sum could overflow")
        check(not problems, f"{tag}: parameters acceptable" + (f": {problems}" if problems else ""))
        if problems:
            raise Refused("parameters")
        me = names.index(self.a.name)

        # the global adapter and this site's update (global + a fixed delta), kept like a fedlora site's
        header, payload = self.fetch(task.base_round)
        check(hashlib.sha256(payload).digest() == task.adapter_sha256 == header.sha256 and
              len(payload) == task.adapter_size,
              f"{tag}: global adapter of round {task.base_round} ({len(payload)} bytes) hashes to the task's digest")
        d = len(payload) // 4
        update = make_update(payload)
        keep_update(self.a.state, task.round, task.adapter_sha256, update)
        delta = [u - x for u, x in zip(struct.unpack(f"<{d}f", update), struct.unpack(f"<{d}f", payload))]

        # stage 0: keys
        c_sk, s_sk = x25519.X25519PrivateKey.generate(), x25519.X25519PrivateKey.generate()
        c_pk, s_pk = raw_pub(c_sk), raw_pub(s_sk)
        run = self.plan.run_id
        sig = sign(self.tls_key, advert_message(run, task.round, names[me], c_pk, s_pk))
        self.stage_call("SecAggAdvertise", pb.SecAggAdvert(round=task.round, attempt=task.attempt, **{"from": me},
                                                            c_pk=c_pk, s_pk=s_pk, signature=sig,
                                                            cert_pem=self.cert_pem), pb.SecAggAck, "advertising")

        # stage 1: every relayed advert verified, shares sealed for each
        adverts = self.poll("SecAggGetAdverts", pb.SecAggAdverts, f"{tag}: waiting for the adverts")
        peer_c, peer_s = {}, {}
        for k, av in enumerate(adverts.adverts):
            i = getattr(av, "from")
            if i >= n or i in peer_c or len(av.c_pk) != 32 or len(av.s_pk) != 32:
                check(False, f"{tag}: relayed advert #{k} (site index {i}) is malformed or repeated")
                raise Refused("adverts")
            cn, why = chain_ok(av.cert_pem, self.cas)
            if cn is None:
                check(False, f"{tag}: the certificate relayed for '{names[i]}' does not chain to the CA: {why}")
                raise Refused("adverts")
            if cn != names[i]:
                check(False, f"{tag}: the advert for '{names[i]}' carries the certificate of '{cn}'")
                raise Refused("adverts")
            pub = load_certs(av.cert_pem.encode())[0].public_key()
            if not verify_sig(pub, av.signature, advert_message(run, task.round, names[i], av.c_pk, av.s_pk)):
                check(False, f"{tag}: the keys relayed for '{names[i]}' are not signed by it")
                raise Refused("adverts")
            peer_c[i], peer_s[i] = av.c_pk, av.s_pk
        own = peer_c.get(me) == c_pk and peer_s.get(me) == s_pk
        check(own and len(peer_c) >= t,
              f"{tag}: {len(peer_c)} adverts verified (chain to the CA, CN = name, signature), this site's "
              f"own relayed unchanged: {own}; threshold {t}")
        if not own or len(peer_c) < t:
            raise Refused("adverts")
        b = secrets.token_bytes(32)
        s_raw = s_sk.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                   serialization.NoEncryption())
        xs = [k + 1 for k in range(n)]  # site k's share is evaluated at x = k + 1
        sh_s, sh_b = shamir_split(s_raw, xs, t), shamir_split(b, xs, t)
        held = {me: (sh_s[me + 1], sh_b[me + 1])}
        sealed = []
        for j in sorted(peer_c):
            if j == me:
                continue
            key = pair_key("fedlora-secagg-share", c_sk, peer_c[j], run, task.round, names[me], names[j])
            plain = bytes([j + 1]) + sh_s[j + 1] + sh_b[j + 1]
            ct = ChaCha20Poly1305(key).encrypt(share_nonce(me), plain, share_aad(task.round, names[me], names[j]))
            sealed.append(pb.SecAggSealedShare(**{"from": me}, to=j, ciphertext=ct[:-16], tag=ct[-16:]))
        self.stage_call("SecAggShareKeys", pb.SecAggShares(round=task.round, attempt=task.attempt, shares=sealed),
                        pb.SecAggAck, "sending the shares")
        check(True, f"{tag}: {len(sealed)} sealed shares sent (s_sk and b split at x = 1..{n}, t = {t})")

        # stage 2: the shares for this site opened; the masked vector
        got = self.poll("SecAggGetShares", pb.SecAggShares, f"{tag}: waiting for the shares")
        u2 = {me}
        for k, c in enumerate(got.shares):
            i = getattr(c, "from")
            if c.to != me or i >= n or i == me or i not in peer_c or i in u2 or len(c.ciphertext) != 65 or \
                    len(c.tag) != 16:
                check(False, f"{tag}: relayed share #{k} (from {i} to {c.to}) is not one for this site")
                raise Refused("shares")
            key = pair_key("fedlora-secagg-share", c_sk, peer_c[i], run, task.round, names[me], names[i])
            try:
                plain = ChaCha20Poly1305(key).decrypt(share_nonce(i), c.ciphertext + c.tag,
                                                      share_aad(task.round, names[i], names[me]))
            except InvalidTag:
                plain = None
            if plain is None or plain[0] != me + 1:
                check(False, f"{tag}: the share from '{names[i]}' does not open (tampered, misrouted or "
                             f"the wrong x: {plain[0] if plain else 'no plaintext'}, want {me + 1})")
                raise Refused("shares")
            held[i] = (plain[1:33], plain[33:65])
            u2.add(i)
        check(len(u2) >= t, f"{tag}: shares from {sorted(names[i] for i in u2 - {me})} opened "
                            f"(with this site's own, {len(u2)} of threshold {t})")
        if len(u2) < t:
            raise Refused("shares")
        w = self.a.examples / task.secagg_weight_scale if task.secagg_weight_scale else 1.0
        if not 0 < w <= 1:
            check(False, f"{tag}: weight {w} outside (0, 1] ({self.a.examples} / {task.secagg_weight_scale})")
            raise Refused("weight")
        losses = [rng, rng * min(max(TRAIN_LOSS, 0), LOSS_MAX) / LOSS_MAX,
                  rng, rng * min(max(VAL_LOSS, 0), LOSS_MAX) / LOSS_MAX]
        x = [min(max(v, -rng), rng) for v in delta + losses]
        y = quantize([w * rng] + [w * v for v in x], rng, scale)
        add_mask(y, b, +1)
        for j in sorted(u2 - {me}):
            seed = pair_key("fedlora-secagg-mask", s_sk, peer_s[j], run, task.round, names[me], names[j])
            add_mask(y, seed, +1 if me < j else -1)
        data = struct.pack(f"<{len(y)}I", *y)
        mh = pb.SecAggMaskedHeader(round=task.round, attempt=task.attempt, words=len(y),
                                   sha256=hashlib.sha256(data).digest(),
                                   metrics=pb.SiteMetrics(steps=STEPS, seconds=SECONDS))
        submit = method(self.channel, "SecAggSubmitMasked", pb.SecAggMaskedChunk, pb.SecAggAck, "stream_unary")
        self.in_attempt(lambda: submit(send_chunks(pb.SecAggMaskedChunk, mh, data), timeout=600),
                        "the masked vector", f"{tag}: the masked vector was refused", "masked")
        check(True, f"{tag}: masked vector of {len(y)} words (the weight word, then d = {d} update floats + "
                    f"{METRIC_WORDS} loss coordinates; w = {w:.6g}) accepted")

        # stage 3: the reveal
        sv = self.poll("SecAggGetSurvivors", pb.SecAggSurvivors, f"{tag}: waiting for the survivors")
        u3 = set(sv.sites)
        problems = []
        if not u3 <= u2:
            problems.append(f"{sorted(u3 - u2)} never sent this site a share")
        if me not in u3:
            problems.append("this site is not among them")
        if len(u3) < t:
            problems.append(f"{len(u3)} survivors, threshold {t}")
        check(not problems, f"{tag}: survivors {sorted(names[i] for i in u3 if i < n)}" +
              (f" refused, nothing revealed: {problems}" if problems else ""))
        if problems:
            raise Refused("survivors")
        kinds, shares = [], []
        for i in range(n):
            if i not in u2:
                kinds.append(NONE), shares.append(b"")
            elif i in u3:
                kinds.append(SELF_SEED), shares.append(held[i][1])
            else:
                kinds.append(MASK_KEY), shares.append(held[i][0])
        self.stage_call("SecAggUnmask", pb.SecAggReveal(round=task.round, attempt=task.attempt, kinds=kinds,
                                                         shares=shares), pb.SecAggAck, "revealing")
        dropped = sorted(names[i] for i in u2 - u3)
        check(True, f"{tag}: revealed self-seed shares of {sorted(names[i] for i in u3)}, mask-key shares of "
                    f"{dropped}, none for {sorted(names[i] for i in set(range(n)) - u2)}")
        self.last_round = task.round
        self.rounds_done.append(task.round)


def self_test():
    """Shamir over GF(2^8): any t of n shares give the secret back, t − 1 do not."""
    ok = gf_mul(0x57, 0x83) == 0xC1 and all(gf_mul(a, gf_inv(a)) == 1 for a in range(1, 256))
    for n, t in ((4, 3), (5, 3), (7, 5)):
        s = secrets.token_bytes(32)
        sh = shamir_split(s, range(1, n + 1), t)
        for start in range(n - t + 1):
            ok &= shamir_recover({x: sh[x] for x in list(sh)[start:start + t]}) == s
        ok &= shamir_recover({x: sh[x] for x in list(sh)[:t - 1]}) != s
    check(ok, "Shamir over GF(2^8) (AES polynomial): 0x57·0x83 = 0xc1, inverses, any t of n shares recover")


def main():
    ap = argparse.ArgumentParser()
    for name in ("server", "ca", "cert", "key", "proto", "base", "state"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--examples", type=int, required=True)
    ap.add_argument("--name", default="alpha")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    os.makedirs(a.state, exist_ok=True)
    self_test()
    site = Site(a, load_messages(a.proto))
    try:
        site.run()
    except Refused as e:
        info(f"stopped: {e}")
        check.failures += check.failures == 0
    print(f"python secagg site: rounds {site.rounds_done}, {check.failures} failed")
    return min(check.failures, 100)


if __name__ == "__main__":
    sys.exit(main())
