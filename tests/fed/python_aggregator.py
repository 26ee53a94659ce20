#!/usr/bin/env python3
"""An aggregator written against proto/fedlora.proto alone, with another stack: Python's grpcio and
Google's protobuf runtime (from `protoc --python_out`), the manifest signed with the openssl CLI. It
runs one round for one site, so a real fedlora-client can be checked against a peer that shares
none of its code (tests/test_fed_python_aggregator.sh).

  python_aggregator.py --port-file F --ca CA --cert CERT --key KEY --proto fedlora.proto \
                       --base BASE_DIR --out DIR [--faults gap,digest,announced,huge] [--sign-key K --sign-cert C]

What it does and checks (each check printed as "ok   ..." or "FAIL ..."):
  Join        the site's fingerprint must equal the base model's, recomputed here from its
              definition (common/fingerprint.h); the answer is a plan built here.
  AwaitRound  TRAIN round 1 from round 0, with a manifest whose plan digest is SHA-256 of the plan
              as serialised here (without site and rounds, manifest.h): the site trains only if its
              own digest of the plan it decoded agrees. After the update: FINISHED at round 1.
  Download    round 0: the initial adapter built here (PEFT names and shapes from the base's
              config.json, A small and seeded, B zero); round 1: the site's update as the result.
              --faults spoils the first downloads in turn: gap (a chunk skips 4 bytes), digest
              (bytes that do not hash to the header's digest), announced (a header digest that is
              not the task's), huge (one 5 MiB chunk, above the site's receive limit). The site must
              refuse each, try again, and finish with the good one.
  Submit      chunks in order from offset 0, the header only first, each at most 1 MiB; the
              payload's tensor specs those of the download; its digest right; every value finite;
              B moved from zero and A stayed close; the example count positive.
With --sign-key/--sign-cert the manifests are signed by that key instead (a forged signer). With
--secagg-threshold T the plan turns secure aggregation on and the task names four sites with
threshold T (no SecAgg method is served: a site must refuse a T it cannot trust before using one).
At the end DIR/result.json holds the received update and the failure count; exit status = the
number of failures."""
import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time

import grpc

from wire_peer import SERVICE, Checks, fingerprint, load_messages, receive_chunks, send_chunks

MODULES = [("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"), ("self_attn", "o_proj"),
           ("mlp", "gate_proj"), ("mlp", "up_proj"), ("mlp", "down_proj")]
CHUNK = 1 << 20
check = Checks()


def adapter_specs(pb, base, rank, targets):
    """(name, shape) of every LoRA tensor in payload order: layer, module q..down, A then B."""
    c = json.load(open(os.path.join(base, "config.json")))
    dim, hidden = c["hidden_size"], c["intermediate_size"]
    head = c.get("head_dim", dim // c["num_attention_heads"])
    kv = c["num_key_value_heads"] * head
    io = {"q_proj": (dim, c["num_attention_heads"] * head), "k_proj": (dim, kv), "v_proj": (dim, kv),
          "o_proj": (c["num_attention_heads"] * head, dim), "gate_proj": (dim, hidden), "up_proj": (dim, hidden),
          "down_proj": (hidden, dim)}
    specs, offset = [], 0
    for layer in range(c["num_hidden_layers"]):
        for block, module in MODULES:
            if module not in targets:
                continue
            fan_in, fan_out = io[module]
            for ab, shape in (("A", [rank, fan_in]), ("B", [fan_out, rank])):
                length = 4 * shape[0] * shape[1]
                name = f"base_model.model.model.layers.{layer}.{block}.{module}.lora_{ab}.weight"
                specs.append(pb.TensorSpec(name=name, shape=shape, dtype=pb.DTYPE_F32, offset=offset, length=length))
                offset += length
    return specs


def sign(body, key, cert_pem):
    with tempfile.NamedTemporaryFile() as f:
        f.write(body.encode())
        f.flush()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, f.name], check=True,
                             capture_output=True).stdout
    return json.dumps({"body": body, "signature": sig.hex(), "cert_pem": cert_pem}, separators=(",", ":"))


class Aggregator:
    def __init__(self, a, pb):
        self.a, self.pb = a, pb
        self.fp = fingerprint(a.base)
        self.targets = ["q_proj", "v_proj"]
        self.plan = pb.JoinResponse(
            run_id="0123456789abcdef0123456789abcdef", base_model_fingerprint=self.fp,
            lora=pb.LoraConfig(rank=4, alpha=8.0, target_modules=self.targets, init_seed=7),
            train=pb.TrainConfig(optimizer="adamw", lr=2e-3, local_steps=5, batch=4, seq_len=64, weight_decay=0.0,
                                 beta1=0.9, beta2=0.999, eps=1e-8, schedule="constant"),
            rounds=pb.RoundPolicy(total_rounds=1, min_clients=1, deadline_s=60, seed=1),
            privacy=pb.PrivacyConfig(secagg=a.secagg_threshold > 0, secagg_threshold=a.secagg_threshold,
                                     secagg_clip_range=1.0 if a.secagg_threshold else 0.0,
                                     secagg_scale=1048576.0 if a.secagg_threshold else 0.0))
        signed = pb.JoinResponse()
        signed.CopyFrom(self.plan)
        signed.ClearField("rounds")  # site is not set yet
        self.plan_sha = hashlib.sha256(signed.SerializeToString()).hexdigest()
        self.specs = adapter_specs(pb, a.base, 4, self.targets)
        rng = random.Random(7)
        values = []
        for s in self.specs:
            n = s.shape[0] * s.shape[1]
            values += [rng.uniform(-0.1, 0.1) for _ in range(n)] if s.name.endswith("lora_A.weight") else [0.0] * n
        self.initial = struct.pack(f"<{len(values)}f", *values)
        self.final = None
        self.faults = [f for f in a.faults.split(",") if f]
        self.sign_key = a.sign_key or a.key
        self.sign_cert = open(a.sign_cert or a.cert).read()

    def manifest(self, round_, base_round, payload):
        body = json.dumps({"run_id": self.plan.run_id, "round": round_, "attempt": 0, "base_round": base_round,
                           "plan_sha256": self.plan_sha, "adapter_sha256": hashlib.sha256(payload).hexdigest()},
                          separators=(",", ":"))
        return sign(body, self.sign_key, self.sign_cert)

    def join(self, req, ctx):
        site = dict(ctx.auth_context()).get("x509_common_name", [b"?"])[0].decode()
        check(req.base_model_fingerprint == self.fp,
              f"Join from '{site}': its base model's fingerprint is the one recomputed here ({self.fp[:16]}...)")
        check(req.train_examples > 0 and req.client_version, f"Join: {req.train_examples} training examples, "
              f"{req.val_examples} validation, client '{req.client_version}'")
        self.examples = req.train_examples
        resp = self.pb.JoinResponse()
        resp.CopyFrom(self.plan)
        resp.site = site
        return resp

    def await_round(self, req, ctx):
        pb = self.pb
        if self.final is None and req.last_round == 0:
            task = pb.RoundTask(kind=pb.RoundTask.TRAIN, round=1, base_round=0,
                                adapter_sha256=hashlib.sha256(self.initial).digest(), adapter_size=len(self.initial),
                                site_seed=42, attempt=0, manifest=self.manifest(1, 0, self.initial))
            if self.plan.privacy.secagg:
                task.secagg_sites.extend(["alpha", "beta", "delta", "gamma"])
                task.secagg_threshold = self.plan.privacy.secagg_threshold
                task.secagg_weight_scale = 1000
            return task
        if self.final is not None:
            return pb.RoundTask(kind=pb.RoundTask.FINISHED, round=1, base_round=1, final_round=1,
                                adapter_sha256=hashlib.sha256(self.final).digest(), adapter_size=len(self.final),
                                manifest=self.manifest(1, 1, self.final))
        time.sleep(0.2)
        return pb.RoundTask(kind=pb.RoundTask.WAIT)

    def download(self, req, ctx):
        pb = self.pb
        payload = self.initial if req.round == 0 else self.final
        if payload is None or req.round > 1:
            ctx.abort(grpc.StatusCode.NOT_FOUND, f"round {req.round} has no adapter")
        fault = self.faults.pop(0) if self.faults else ""
        header = pb.PayloadHeader(tensors=self.specs, total_size=len(payload), sha256=hashlib.sha256(payload).digest())
        if fault == "announced":  # a consistent adapter, but not the one the task announced
            other = bytearray(payload)
            other[0] ^= 1
            payload = bytes(other)
            header.sha256 = hashlib.sha256(payload).digest()
        if fault == "digest":  # bytes that do not hash to the header's digest
            spoiled = bytearray(payload)
            spoiled[-1] ^= 0x40
            payload = bytes(spoiled)
        if fault:
            print(f"download of round {req.round}: serving it with fault '{fault}'", flush=True)
        if fault == "huge":
            yield pb.Chunk(header=header, offset=0, data=bytes(5 << 20))
            return
        if fault == "gap":  # 4 bytes skipped after the first 1 KiB chunk
            yield from send_chunks(pb.Chunk, header, payload, 1024, gap=4)
        else:
            yield from send_chunks(pb.Chunk, header, payload, CHUNK)

    def submit(self, it, ctx):
        pb = self.pb
        out_of_order = []
        h, data, big = receive_chunks(it, lambda i, c, offset: out_of_order.append(i))
        check(not out_of_order and big <= CHUNK,
              f"Submit: chunks in order from 0, header first only, largest {big} bytes")
        check(h.round == 1 and 0 < h.example_count <= self.examples,
              f"Submit: round {h.round}, {h.example_count} examples (declared {self.examples})")
        got = [(t.name, list(t.shape), t.dtype, t.offset, t.length) for t in h.payload.tensors]
        want = [(t.name, list(t.shape), t.dtype, t.offset, t.length) for t in self.specs]
        check(got == want, f"Submit: the payload's {len(got)} tensor specs are the download's")
        check(h.payload.total_size == len(data) == len(self.initial) and
              hashlib.sha256(data).digest() == h.payload.sha256, f"Submit: {len(data)} bytes with their digest")
        n = len(data) // 4
        u, g = struct.unpack(f"<{n}f", data), struct.unpack(f"<{n}f", self.initial)
        moved_b = moved_a = 0.0
        for s in self.specs:
            lo, hi = s.offset // 4, (s.offset + s.length) // 4
            d = max(abs(u[i] - g[i]) for i in range(lo, hi))
            if s.name.endswith("lora_B.weight"):
                moved_b = max(moved_b, d)
            else:
                moved_a = max(moved_a, d)
        finite = all(x == x and abs(x) != float("inf") for x in u)
        check(finite and 0 < moved_b < 1 and moved_a < 1,
              f"Submit: finite; B moved from zero by up to {moved_b:.3g}, A by up to {moved_a:.3g} (5 AdamW steps)")
        m = h.metrics
        check(m.steps == 5 and m.train_loss > 0 and m.tokens > 0,
              f"Submit: metrics steps {m.steps}, train loss {m.train_loss:.4f}, {m.tokens} tokens")
        self.final = data
        return pb.SubmitResponse(sha256=hashlib.sha256(data).digest(), message="accepted by the Python aggregator")

    def status(self, req, ctx):
        return self.pb.Status(run_id=self.plan.run_id, total_rounds=1)


def main():
    ap = argparse.ArgumentParser()
    for name in ("port-file", "ca", "cert", "key", "proto", "base", "out"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--faults", default="")
    ap.add_argument("--sign-key")
    ap.add_argument("--sign-cert")
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--secagg-threshold", type=int, default=0)
    a = ap.parse_args()
    pb = load_messages(a.proto)
    agg = Aggregator(a, pb)

    def uu(fn, req, resp):
        return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=req.FromString,
                                                   response_serializer=resp.SerializeToString)

    handlers = {
        "Join": uu(agg.join, pb.JoinRequest, pb.JoinResponse),
        "AwaitRound": uu(agg.await_round, pb.AwaitRoundRequest, pb.RoundTask),
        "GetStatus": uu(agg.status, pb.StatusRequest, pb.Status),
        "DownloadAdapter": grpc.unary_stream_rpc_method_handler(
            agg.download, request_deserializer=pb.DownloadRequest.FromString,
            response_serializer=pb.Chunk.SerializeToString),
        "SubmitUpdate": grpc.stream_unary_rpc_method_handler(
            agg.submit, request_deserializer=pb.UpdateChunk.FromString,
            response_serializer=pb.SubmitResponse.SerializeToString),
    }
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_send_message_length", 16 << 20)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    creds = grpc.ssl_server_credentials([(open(a.key, "rb").read(), open(a.cert, "rb").read())],
                                        root_certificates=open(a.ca, "rb").read(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(a.port_file + ".tmp", a.port_file)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    # Serve until the site has fetched the final adapter and gone, or the time is up.
    deadline = time.time() + a.seconds
    while time.time() < deadline and not os.path.exists(os.path.join(a.out, "stop")):
        time.sleep(0.1)
    server.stop(1)
    if agg.faults:
        check(False, f"faults never served: {agg.faults}")
    json.dump({"failures": check.failures, "plan_sha256": agg.plan_sha,
               "update": (agg.final or b"").hex()}, open(os.path.join(a.out, "result.json"), "w"))
    print(f"python aggregator: {check.failures} failed", flush=True)
    return min(check.failures, 100)


if __name__ == "__main__":
    sys.exit(main())
