"""Pre-LayerNorm transformer block with attention written out by hand, shared by gpt_tiny (causal)
and bert_tiny (bidirectional).

No fused ops on purpose: the exported ONNX graph holds the plain ops that the pruner (heads, FFN
neurons) and the quantizer (MatMul weights) must understand:
    q,k,v = x Wq + bq, x Wk + bk, x Wv + bv        (MatMul + Add, weights [d, d])
    q -> Reshape [-1, T, H, Dh] -> Transpose [B, H, T, Dh]   (k is transposed to [B, H, Dh, T])
    p = Softmax(q k * 1/sqrt(Dh) + M)              (M: constant mask, causal 0 / -1e4, else 0)
    o = Reshape(Transpose(p v), [-1, T, d]) Wo + bo
    x = x + o(LN1(x));   x = x + W2 gelu(W1 LN2(x) + b1) + b2
The Reshape targets are constants ([-1, T, H, Dh]; -1 is the batch), so removing a head changes
constants only, never a Shape->Gather->Concat chain.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d, heads, t, causal):
        super().__init__()
        self.d, self.h, self.t = d, heads, t
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        # -1e4, not -inf: a finite mask survives quantizers and fp16 without producing NaN
        mask = torch.triu(torch.full((t, t), -1e4), diagonal=1) if causal else None
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        dh = self.d // self.h
        q = self.q(x).reshape(-1, self.t, self.h, dh).transpose(1, 2)
        k = self.k(x).reshape(-1, self.t, self.h, dh).permute(0, 2, 3, 1)
        v = self.v(x).reshape(-1, self.t, self.h, dh).transpose(1, 2)
        s = torch.matmul(q, k) * (1.0 / math.sqrt(dh))
        if self.mask is not None:
            s = s + self.mask
        p = torch.softmax(s, dim=-1)
        return self.o(torch.matmul(p, v).transpose(1, 2).reshape(-1, self.t, self.d))


class Block(nn.Module):
    def __init__(self, d, heads, t, ffn, causal):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, t, causal)
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
