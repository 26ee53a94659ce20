#!/usr/bin/env python3
"""Checks the round manifests the sites kept, independently of the C code: signatures with the
openssl command line, adapter digests recomputed from the aggregator's round directories.

  check_manifests.py verify FILE --ca CA --name NAME
      exit 0 if FILE's certificate chains to CA as a TLS server certificate (openssl verify
      -purpose sslserver), names NAME (x509 -checkhost/-checkip) and its signature covers the body
      (openssl dgst -sha256 -verify with the certificate's public key); 1 otherwise.

  check_manifests.py run AGG_STATE --ca CA --name NAME --sites SITE_STATE...
      for every committed round r and every site: at least one kept manifest
      SITE_STATE/manifests/round-rrrr-attempt-*.json; each verifies as above and vouches for
      run_id = AGG_STATE/state.json's, round r, base_round r - 1, and adapter_sha256 = SHA-256 of
      the payload of AGG_STATE/rounds/r-1 (tests/fed/check_rounds.py's packing); the plan digest is
      the same in every manifest; SITE_STATE/audit.jsonl has a "manifest" record naming the kept
      file's SHA-256, round and attempt. And the run's end: SITE_STATE/manifests/final-round-LLLL.json
      (L the last committed round) verifies, vouches for round = base_round = L and the payload of
      AGG_STATE/rounds/L, which is also the payload of SITE_STATE/final, and is in the audit log.
      Exit 0 when all hold, 1 otherwise."""
import argparse
import glob
import hashlib
import ipaddress
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_rounds import adapter_payload  # noqa: E402


def openssl(*args, stdin=None):
    p = subprocess.run(["openssl", *args], input=stdin, capture_output=True)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def verify(path, ca, name):
    """(body dict, None) if the manifest at path is genuine, else (None, reason)."""
    with open(path, "rb") as f:
        doc = json.loads(f.read())
    body, sig, pem = doc["body"], bytes.fromhex(doc["signature"]), doc["cert_pem"]
    with tempfile.TemporaryDirectory() as tmp:
        cert, pub, sigf, bodyf = (os.path.join(tmp, n) for n in ("cert.pem", "pub.pem", "sig.bin", "body.txt"))
        with open(cert, "w") as f:
            f.write(pem)
        with open(sigf, "wb") as f:
            f.write(sig)
        with open(bodyf, "wb") as f:
            f.write(body.encode())
        rc, out = openssl("verify", "-CAfile", ca, "-purpose", "sslserver", cert)
        if rc != 0:
            return None, f"certificate does not verify against {ca} as a server certificate: {out.strip()}"
        try:
            ipaddress.ip_address(name)
            check = "-checkip"
        except ValueError:
            check = "-checkhost"
        rc, out = openssl("x509", "-in", cert, "-noout", check, name)
        if "does match" not in out:
            return None, f"certificate does not name {name}: {out.strip()}"
        rc, out = openssl("x509", "-in", cert, "-pubkey", "-noout", "-out", pub)
        if rc != 0:
            return None, f"no public key: {out.strip()}"
        rc, out = openssl("dgst", "-sha256", "-verify", pub, "-signature", sigf, bodyf)
        if rc != 0 or "Verified OK" not in out:
            return None, f"signature does not verify: {out.strip()}"
    return json.loads(body), None


def payload_sha(round_dir):
    values = adapter_payload(round_dir)
    return hashlib.sha256(struct.pack(f"<{len(values)}f", *values)).hexdigest()


def audit_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check_kept(path, want, kept, args, plans, bad):
    """One kept manifest: it verifies, vouches for want's fields, and is on record in the audit log
    (kept: the (round, attempt, sha256) of its manifest records). True when it was checked."""
    body, why = verify(path, args.ca, args.name)
    if body is None:
        bad.append(f"{path}: {why}")
        return False
    for k, v in want.items():
        if body[k] != v:
            bad.append(f"{path}: {k} is {body[k]}, expected {v}")
    plans.add(body["plan_sha256"])
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if (want["round"], body["attempt"], sha) not in kept:
        bad.append(f"{path}: no audit record of round {want['round']} attempt {body['attempt']} sha256 {sha}")
    return True


def check_run(args):
    bad = []
    run_id = json.load(open(os.path.join(args.agg, "state.json")))["run_id"]
    rounds = sorted(int(d) for d in os.listdir(os.path.join(args.agg, "rounds")) if d.isdigit())
    plans = set()
    checked = 0
    for site in args.sites:
        audit = audit_records(os.path.join(site, "audit.jsonl"))
        kept = {(a["round"], a["attempt"], a["sha256"]) for a in audit if a["event"] == "manifest"}
        for r in rounds[1:]:
            files = sorted(glob.glob(os.path.join(site, "manifests", f"round-{r:04d}-attempt-*.json")))
            if not files:
                bad.append(f"{site}: no manifest kept for round {r}")
            want = {"run_id": run_id, "round": r, "base_round": r - 1,
                    "adapter_sha256": payload_sha(os.path.join(args.agg, "rounds", f"{r - 1:04d}"))}
            checked += sum(check_kept(path, want, kept, args, plans, bad) for path in files)
        # The run's end: final-round-LLLL.json vouches for the last round's adapter, which the site
        # kept in SITE_STATE/final.
        last = rounds[-1]
        path = os.path.join(site, "manifests", f"final-round-{last:04d}.json")
        final_sha = payload_sha(os.path.join(args.agg, "rounds", f"{last:04d}"))
        if not os.path.exists(path):
            bad.append(f"{site}: no manifest kept for the final adapter (round {last})")
            continue
        want = {"run_id": run_id, "round": last, "base_round": last, "adapter_sha256": final_sha}
        checked += check_kept(path, want, kept, args, plans, bad)
        if payload_sha(os.path.join(site, "final")) != final_sha:
            bad.append(f"{site}/final is not the adapter the final manifest vouches for")
    if len(plans) > 1:
        bad.append(f"the manifests vouch for {len(plans)} different plans: {sorted(plans)}")
    for b in bad:
        print("FAIL", b)
    print(f"{checked} manifests checked over {len(rounds) - 1} rounds and {len(args.sites)} sites, {len(bad)} problems")
    return 1 if bad or checked == 0 else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["verify", "run"])
    ap.add_argument("target", help="the manifest (verify) or the aggregator's state_dir (run)")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--sites", nargs="*", default=[])
    args = ap.parse_args()
    if args.mode == "verify":
        body, why = verify(args.target, args.ca, args.name)
        print(f"OK round {body['round']} attempt {body['attempt']}" if body else f"REFUSED: {why}")
        return 0 if body else 1
    args.agg = args.target
    return check_run(args)


if __name__ == "__main__":
    sys.exit(main())
