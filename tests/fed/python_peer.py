#!/usr/bin/env python3
"""A site written against proto/fedlora.proto alone, with another stack: Python's grpcio for gRPC and
Google's protobuf runtime for the messages (from `protoc --python_out`), so nothing of fedlora's C
code (protobuf-c, its RPC layer, its payload code) is on this side of the wire.

  python_peer.py --server HOST:PORT --ca CA --cert CERT --key KEY --proto fedlora.proto \
                 --base BASE_DIR --examples N --state SITE_STATE_DIR

It joins (the base model's fingerprint recomputed here from its documented definition), reads
the plan and the status, waits for its TRAIN task, downloads the global adapter in chunks and checks
it against the task's digest, sends bad updates that must be refused with the right gRPC status
and a message, then a good one (the global adapter plus a fixed delta; acknowledged with its
digest, and again as a duplicate), keeps it as a fedlora site would (SITE_STATE/updates/, for
tests/fed/check_rounds.py), and finally downloads the run's final adapter. Every check prints
"ok   ..." or "FAIL ..."; the exit status is the number of failures (0: all held)."""
import argparse
import hashlib
import os
import struct
import sys
import time

import grpc

from wire_peer import (SECONDS, STEPS, TOKENS, TRAIN_LOSS, VAL_LOSS, Checks, fingerprint, keep_update, load_messages,
                       make_update, method, receive_chunks, send_chunks, site_channel)

check = Checks()


def expect_error(call, code, words, what):
    try:
        call()
    except grpc.RpcError as e:
        got = e.code()
        ok = got == code and all(w in e.details() for w in words)
        check(ok, f"{what}: {got.name} '{e.details()}'" + ("" if ok else f" (want {code.name} with {words})"))
        return
    check(False, f"{what}: accepted (want {code.name})")


def main():
    ap = argparse.ArgumentParser()
    for name in ("server", "ca", "cert", "key", "proto", "base", "state"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--examples", type=int, required=True)
    a = ap.parse_args()
    pb = load_messages(a.proto)
    channel = site_channel(a.server, a.ca, a.cert, a.key)
    join = method(channel, "Join", pb.JoinRequest, pb.JoinResponse)
    await_round = method(channel, "AwaitRound", pb.AwaitRoundRequest, pb.RoundTask)
    status = method(channel, "GetStatus", pb.StatusRequest, pb.Status)
    download = method(channel, "DownloadAdapter", pb.DownloadRequest, pb.Chunk, "unary_stream")
    submit = method(channel, "SubmitUpdate", pb.UpdateChunk, pb.SubmitResponse, "stream_unary")

    # --- join
    fp = fingerprint(a.base)
    expect_error(lambda: join(pb.JoinRequest(base_model_fingerprint="00" * 32, train_examples=a.examples,
                                             client_version="python-peer"), timeout=30),
                 grpc.StatusCode.FAILED_PRECONDITION, ["fingerprint"], "a join with another base model is refused")
    plan = join(pb.JoinRequest(base_model_fingerprint=fp, train_examples=a.examples, val_examples=10,
                               client_version="python-peer"), timeout=30)
    check(plan.site == "alpha" and plan.base_model_fingerprint == fp and plan.lora.rank > 0 and len(plan.run_id) > 0,
          f"joined as '{plan.site}' (the certificate's CN) in run {plan.run_id}: LoRA r={plan.lora.rank} on "
          f"{list(plan.lora.target_modules)}, {plan.rounds.total_rounds} round(s)")
    expect_error(lambda: method(channel, "NoSuchMethod", pb.StatusRequest, pb.Status)(pb.StatusRequest(), timeout=30),
                 grpc.StatusCode.UNIMPLEMENTED, [], "a method the service does not have")
    st = status(pb.StatusRequest(), timeout=30)
    check(st.run_id == plan.run_id and any(s.name == "alpha" and s.joined for s in st.sites),
          f"status names the run and alpha as joined ({[(s.name, s.joined) for s in st.sites]})")

    # --- the TRAIN task (long-poll: WAIT until the round opens)
    deadline = time.time() + 90
    task = pb.RoundTask()
    while time.time() < deadline:
        task = await_round(pb.AwaitRoundRequest(last_round=0), timeout=60)
        if task.kind != pb.RoundTask.WAIT:
            break
    check(task.kind == pb.RoundTask.TRAIN and task.round == 1 and len(task.adapter_sha256) == 32 and task.manifest,
          f"round {task.round}: TRAIN task from round {task.base_round}'s adapter ({task.adapter_size} bytes), "
          f"with a signed manifest of {len(task.manifest)} bytes")
    with open(os.path.join(a.state, "manifest.json"), "w") as f:
        f.write(task.manifest)

    def out_of_order(i, c, offset):
        check(False, f"download chunk {i}: offset {c.offset}, want {offset}; header only first")

    def fetch(round_):
        return receive_chunks(download(pb.DownloadRequest(round=round_), timeout=60), out_of_order)[:2]

    header, payload = fetch(task.base_round)
    check(header is not None and len(payload) == header.total_size == task.adapter_size and
          hashlib.sha256(payload).digest() == header.sha256 == task.adapter_sha256,
          f"global adapter: {len(payload)} bytes in {len(header.tensors)} tensors, its digest the task's")
    check(all(t.dtype == pb.DTYPE_F32 for t in header.tensors) and
          sum(t.length for t in header.tensors) == len(payload), "the tensor specs tile the payload (f32)")

    # --- an update: the global adapter plus a fixed delta
    update = make_update(payload)
    sha = hashlib.sha256(update).digest()
    metrics = pb.SiteMetrics(train_loss=TRAIN_LOSS, val_loss_before=VAL_LOSS, tokens=TOKENS, steps=STEPS,
                             seconds=SECONDS)

    def chunks(data, round_=1, examples=a.examples, total=None, digest=None, size=1 << 20):
        h = pb.UpdateHeader(round=round_, example_count=examples, metrics=metrics,
                            payload=pb.PayloadHeader(tensors=header.tensors,
                                                     total_size=len(data) if total is None else total,
                                                     sha256=sha if digest is None else digest))
        return send_chunks(pb.UpdateChunk, h, data, size)

    expect_error(lambda: submit(chunks(update, examples=a.examples + 1), timeout=60),
                 grpc.StatusCode.INVALID_ARGUMENT, ["example"], "more examples than declared at Join")
    expect_error(lambda: submit(chunks(update, round_=2), timeout=60),
                 grpc.StatusCode.FAILED_PRECONDITION, ["round"], "an update for a round that is not open")
    expect_error(lambda: submit(chunks(update[:-4], total=len(update)), timeout=60),
                 grpc.StatusCode.INVALID_ARGUMENT, [], "a payload shorter than its header says")
    expect_error(lambda: submit(chunks(update, digest=b"\0" * 32), timeout=60),
                 grpc.StatusCode.DATA_LOSS, ["SHA-256"], "bytes that do not hash to the declared digest")
    # the aggregator's receive limit is 4 MiB + 64 KiB (common/rpc_wire.h); this chunk is 5 MiB
    huge = bytes(5 << 20)
    expect_error(lambda: submit(chunks(huge, size=len(huge)), timeout=60),
                 grpc.StatusCode.RESOURCE_EXHAUSTED, [], "one message above the receive limit")
    bad = bytearray(update)
    bad[0:4] = struct.pack("<f", float("nan"))
    expect_error(lambda: submit(chunks(bytes(bad), digest=hashlib.sha256(bad).digest()), timeout=60),
                 grpc.StatusCode.INVALID_ARGUMENT, ["NaN", "element 0", header.tensors[0].name],
                 "an update that is not finite")

    r = submit(chunks(update), timeout=60)
    check(not r.duplicate and r.sha256 == sha, f"the update is accepted with its digest ({r.message or 'no message'})")
    r = submit(chunks(update), timeout=60)
    check(r.duplicate and r.sha256 == sha, "the same bytes again: acknowledged as a duplicate")
    keep_update(a.state, 1, task.adapter_sha256, update)  # for check_rounds.py

    # --- the end of the run and its final adapter
    deadline = time.time() + 90
    while time.time() < deadline:
        task = await_round(pb.AwaitRoundRequest(last_round=1), timeout=60)
        if task.kind == pb.RoundTask.FINISHED:
            break
    check(task.kind == pb.RoundTask.FINISHED and task.final_round == 1, f"the run finished at round {task.final_round}")
    header, final = fetch(task.final_round)
    check(hashlib.sha256(final).digest() == task.adapter_sha256 and final != payload,
          f"the final adapter ({len(final)} bytes) hashes to the task's digest and moved")
    with open(os.path.join(a.state, "final.bin"), "wb") as f:
        f.write(final)
    expect_error(lambda: fetch(99), grpc.StatusCode.NOT_FOUND, ["99"], "the adapter of a round never committed")
    print(f"python peer: {check.failures} failed")
    return min(check.failures, 100)


if __name__ == "__main__":
    sys.exit(main())
