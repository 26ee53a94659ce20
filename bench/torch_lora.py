#!/usr/bin/env python3
"""The PyTorch baseline for bench/train_bench: the same Llama shapes, LoRA and optimizer, by hand.

Llama as common/model.c computes it: token embedding, per layer RMSNorm -> q/k/v projections ->
RoPE on adjacent pairs -> grouped-query causal attention -> o projection -> residual -> RMSNorm ->
down(silu(gate x) * up x) -> residual; final RMSNorm and the classifier tied to the embedding.
LoRA r=8, alpha=16 on q, k, v, o, gate, up, down (A kaiming-uniform, B zero, as PEFT), AdamW
(lr 1e-4, betas 0.9/0.999, weight decay 0.01) on the adapters only, global-norm clipping at 1.
The base weights are random and frozen (requires_grad False), so autograd computes exactly the
products fedlora does: forward, the input gradients, and the LoRA gradients.

Threads: torch.set_num_threads(--threads). OpenBLAS's own pool is fixed when the library loads,
so run.sh sets OPENBLAS_NUM_THREADS in the environment; this script only reports it.

Prints one line: tokens/s and peak RSS (getrusage ru_maxrss), parseable by run.sh.
"""
import argparse
import math
import os
import resource
import time

import torch
import torch.nn.functional as F

CONFIGS = {
    # name: dim, layers, heads, kv heads, hidden, vocab, batch, seq, timed steps
    "tiny": dict(dim=64, layers=5, heads=8, kv_heads=4, hidden=172, vocab=512, batch=8, seq=256, steps=10),
    "small": dict(dim=288, layers=6, heads=6, kv_heads=6, hidden=768, vocab=32000, batch=4, seq=256, steps=5),
    "medium": dict(dim=768, layers=12, heads=12, kv_heads=12, hidden=2048, vocab=32000, batch=2, seq=256, steps=3),
}


class LoraLinear(torch.nn.Module):
    """y = x W^T + scale (x A^T) B^T with W frozen."""

    def __init__(self, fan_in, fan_out, rank, alpha):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(fan_out, fan_in) * 0.02, requires_grad=False)
        bound = 1.0 / math.sqrt(fan_in)
        self.lora_a = torch.nn.Parameter(torch.empty(rank, fan_in).uniform_(-bound, bound))
        self.lora_b = torch.nn.Parameter(torch.zeros(fan_out, rank))
        self.scale = alpha / rank

    def forward(self, x):
        return F.linear(x, self.weight) + self.scale * F.linear(F.linear(x, self.lora_a), self.lora_b)


def rms_norm(x, weight, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope_tables(seq, head_dim, theta=10000.0):
    freq = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angle = torch.outer(torch.arange(seq).float(), freq)  # (T, hd/2)
    return angle.cos(), angle.sin()


def rope(x, cos, sin):
    """x (B, heads, T, hd): rotates adjacent pairs (2i, 2i+1)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self, c, rank, alpha):
        super().__init__()
        d, hd = c["dim"], c["dim"] // c["heads"]
        self.heads, self.kv_heads, self.head_dim = c["heads"], c["kv_heads"], hd
        self.norm_att = torch.nn.Parameter(torch.ones(d), requires_grad=False)
        self.norm_ffn = torch.nn.Parameter(torch.ones(d), requires_grad=False)
        self.q = LoraLinear(d, c["heads"] * hd, rank, alpha)
        self.k = LoraLinear(d, c["kv_heads"] * hd, rank, alpha)
        self.v = LoraLinear(d, c["kv_heads"] * hd, rank, alpha)
        self.o = LoraLinear(c["heads"] * hd, d, rank, alpha)
        self.gate = LoraLinear(d, c["hidden"], rank, alpha)
        self.up = LoraLinear(d, c["hidden"], rank, alpha)
        self.down = LoraLinear(c["hidden"], d, rank, alpha)

    def forward(self, x, cos, sin, causal):
        B, T, _ = x.shape
        h = rms_norm(x, self.norm_att)
        q = self.q(h).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(h).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(h).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        group = self.heads // self.kv_heads
        if group > 1:
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        att = att.masked_fill(causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.heads * self.head_dim)
        x = x + self.o(y)
        h = rms_norm(x, self.norm_ffn)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(torch.nn.Module):
    def __init__(self, c, rank=8, alpha=16.0):
        super().__init__()
        self.emb = torch.nn.Parameter(torch.randn(c["vocab"], c["dim"]) * 0.02, requires_grad=False)
        self.blocks = torch.nn.ModuleList(Block(c, rank, alpha) for _ in range(c["layers"]))
        self.norm = torch.nn.Parameter(torch.ones(c["dim"]), requires_grad=False)
        cos, sin = rope_tables(c["seq"], c["dim"] // c["heads"])
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)
        self.register_buffer("causal", torch.ones(c["seq"], c["seq"], dtype=torch.bool).triu(1))

    def forward(self, tokens, targets):
        x = F.embedding(tokens, self.emb)
        for block in self.blocks:
            x = block(x, self.cos, self.sin, self.causal)
        logits = F.linear(rms_norm(x, self.norm), self.emb)  # tied classifier
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=CONFIGS, default="tiny")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: the config's)")
    ap.add_argument("--max-seconds", type=float, default=0.0,
                    help="stop timing after the step that passes this (at least one step); 0: no limit. "
                         "Keeps run.sh bounded when an arrangement is pathologically slow on a busy machine")
    args = ap.parse_args()
    c = CONFIGS[args.config]
    steps = args.steps or c["steps"]
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = Llama(c)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    n_tokens = c["batch"] * c["seq"]
    ids = (torch.arange(n_tokens + 1, dtype=torch.int64) * 2654435761) % c["vocab"]
    tokens, targets = ids[:-1].view(c["batch"], c["seq"]), ids[1:].view(c["batch"], c["seq"])

    def step():
        loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    step()  # warm-up, as train_bench does
    cpu0 = time.process_time()
    start = time.perf_counter()
    done = 0
    while done < steps:
        loss = step()
        done += 1
        if args.max_seconds > 0 and time.perf_counter() - start > args.max_seconds:
            break
    elapsed = time.perf_counter() - start
    cores = (time.process_time() - cpu0) / elapsed  # 2 on two idle cores; less: the neighbours had them
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"config {args.config} torch {torch.__version__} torch_threads {torch.get_num_threads()} "
          f"OPENBLAS_NUM_THREADS {os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, {done} steps")
    print(f"tokens/s {done * n_tokens / elapsed:.0f}  step {elapsed / done * 1e3:.1f} ms  "
          f"peak RSS {rss_mb:.1f} MB  cores used {cores:.2f}  (loss {loss:.4f})")


if __name__ == "__main__":
    main()
