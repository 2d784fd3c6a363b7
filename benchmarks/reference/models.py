"""GPT-2, LLaMA, MonarchSLM and SymbioSLM in plain PyTorch, built from a swift-slm
config.json and loading its model.safetensors (Hugging Face parameter names and layouts).
Written independently of swift-slm's Swift code, as the reference its numbers are checked
against. The Monarch mixer is built literally as the dense masked matrix
M = Pᵀ · B(L1) · P · B(L2) from explicit permutation and block-diagonal matrices (the
plain reading of the layout), not in swift-slm's factored form."""
import json
import math

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


class Reference(torch.nn.Module):
    """Parameters live in a dict under their Hugging Face names."""

    def __init__(self, config):
        super().__init__()
        self.c = config
        self.names = []
        self._params = torch.nn.ParameterList()
        self.p = {}

    def add(self, name, shape, init):
        t = torch.empty(*shape)
        if init == "ones":
            torch.nn.init.ones_(t)
        elif init == "zeros":
            torch.nn.init.zeros_(t)
        else:
            torch.nn.init.normal_(t, 0.0, init)
        param = torch.nn.Parameter(t)
        self._params.append(param)
        self.p[name] = param
        self.names.append(name)

    def load(self, path):
        tensors = load_file(path)
        missing = set(self.names) - set(tensors)
        extra = set(tensors) - set(self.names)
        if missing or extra:
            raise ValueError(f"weights do not match: missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}")
        with torch.no_grad():
            for name in self.names:
                if tuple(tensors[name].shape) != tuple(self.p[name].shape):
                    raise ValueError(f"{name}: {tuple(tensors[name].shape)} vs {tuple(self.p[name].shape)}")
                self.p[name].copy_(tensors[name])
        return self

    def loss(self, idx, targets):
        logits = self(idx)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


class GPT2(Reference):
    def __init__(self, c):
        super().__init__(c)
        d, f, L = c["width"], c["ffn_width"], c["layers"]
        resid = 0.02 / math.sqrt(2 * L)
        self.add("transformer.wte.weight", (c["vocab_size"], d), 0.02)
        self.add("transformer.wpe.weight", (c["context"], d), 0.01)
        for i in range(L):
            n = f"transformer.h.{i}."
            self.add(n + "ln_1.weight", (d,), "ones")
            self.add(n + "ln_1.bias", (d,), "zeros")
            self.add(n + "attn.c_attn.weight", (d, 3 * d), 0.02)
            self.add(n + "attn.c_attn.bias", (3 * d,), "zeros")
            self.add(n + "attn.c_proj.weight", (d, d), resid)
            self.add(n + "attn.c_proj.bias", (d,), "zeros")
            self.add(n + "ln_2.weight", (d,), "ones")
            self.add(n + "ln_2.bias", (d,), "zeros")
            self.add(n + "mlp.c_fc.weight", (d, f), 0.02)
            self.add(n + "mlp.c_fc.bias", (f,), "zeros")
            self.add(n + "mlp.c_proj.weight", (f, d), resid)
            self.add(n + "mlp.c_proj.bias", (d,), "zeros")
        self.add("transformer.ln_f.weight", (d,), "ones")
        self.add("transformer.ln_f.bias", (d,), "zeros")
        if not c["tied_embeddings"]:
            self.add("lm_head.weight", (c["vocab_size"], d), 0.02)

    def forward(self, idx):
        c, p = self.c, self.p
        B, T = idx.shape
        d, H = c["width"], c["heads"]
        eps, drop = c["norm_eps"], c["dropout"] if self.training else 0.0
        x = p["transformer.wte.weight"][idx] + p["transformer.wpe.weight"][:T]
        x = F.dropout(x, drop, self.training)
        for i in range(c["layers"]):
            n = f"transformer.h.{i}."
            h = F.layer_norm(x, (d,), p[n + "ln_1.weight"], p[n + "ln_1.bias"], eps)
            q, k, v = (h @ p[n + "attn.c_attn.weight"] + p[n + "attn.c_attn.bias"]).split(d, dim=2)
            q, k, v = (t.view(B, T, H, d // H).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d)
            x = x + F.dropout(y @ p[n + "attn.c_proj.weight"] + p[n + "attn.c_proj.bias"], drop, self.training)
            h = F.layer_norm(x, (d,), p[n + "ln_2.weight"], p[n + "ln_2.bias"], eps)
            h = F.gelu(h @ p[n + "mlp.c_fc.weight"] + p[n + "mlp.c_fc.bias"], approximate="tanh")
            x = x + F.dropout(h @ p[n + "mlp.c_proj.weight"] + p[n + "mlp.c_proj.bias"], drop, self.training)
        x = F.layer_norm(x, (d,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
        head = p["transformer.wte.weight"] if c["tied_embeddings"] else p["lm_head.weight"]
        return x @ head.t()


def bitlinear(x, w):
    """BitNet b1.58's BitLinear with the straight-through estimator, as its authors train it:
    weights to {-s, 0, s} with s = mean|W|, each token's activations to 8 bits by absmax."""
    s = w.abs().mean().clamp(min=1e-5)
    wq = w + ((w / s).round().clamp(-1, 1) * s - w).detach()
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    xq = x + ((x * scale).round().clamp(-128, 127) / scale - x).detach()
    return xq @ wq.t()


class Llama(Reference):
    def __init__(self, c):
        super().__init__(c)
        d, f, L = c["width"], c["ffn_width"], c["layers"]
        kv = c["kv_heads"] * (d // c["heads"])
        resid = 0.02 / math.sqrt(2 * L)
        self.add("model.embed_tokens.weight", (c["vocab_size"], d), 0.02)
        for i in range(L):
            n = f"model.layers.{i}."
            self.add(n + "input_layernorm.weight", (d,), "ones")
            self.add(n + "self_attn.q_proj.weight", (d, d), 0.02)
            self.add(n + "self_attn.k_proj.weight", (kv, d), 0.02)
            self.add(n + "self_attn.v_proj.weight", (kv, d), 0.02)
            if c.get("sub_norm"):
                self.add(n + "self_attn.attn_sub_norm.weight", (d,), "ones")
            self.add(n + "self_attn.o_proj.weight", (d, d), resid)
            self.add(n + "post_attention_layernorm.weight", (d,), "ones")
            self.add(n + "mlp.gate_proj.weight", (f, d), 0.02)
            self.add(n + "mlp.up_proj.weight", (f, d), 0.02)
            if c.get("sub_norm"):
                self.add(n + "mlp.ffn_sub_norm.weight", (f,), "ones")
            self.add(n + "mlp.down_proj.weight", (d, f), resid)
        self.add("model.norm.weight", (d,), "ones")
        if not c["tied_embeddings"]:
            self.add("lm_head.weight", (c["vocab_size"], d), 0.02)
        hs = d // c["heads"]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
        angles = torch.outer(torch.arange(c["context"], dtype=torch.float64), inv)
        self.register_buffer("cos", torch.cat([angles.cos(), angles.cos()], -1).float(), persistent=False)
        self.register_buffer("sin", torch.cat([angles.sin(), angles.sin()], -1).float(), persistent=False)

    def rope(self, x, T):  # x: [B, H, T, hs], rotate-half pairing
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * self.cos[:T] + rotated * self.sin[:T]

    def rms(self, x, w):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.c["norm_eps"])).to(x.dtype) * w

    def forward(self, idx):
        c, p = self.c, self.p
        B, T = idx.shape
        d, H, KV = c["width"], c["heads"], c["kv_heads"]
        hs, drop = d // H, c["dropout"] if self.training else 0.0
        ternary, sub = c.get("quantization") == "ternary", c.get("sub_norm", False)

        def lin(x, name):
            return bitlinear(x, p[name]) if ternary else x @ p[name].t()

        x = F.dropout(p["model.embed_tokens.weight"][idx], drop, self.training)
        for i in range(c["layers"]):
            n = f"model.layers.{i}."
            h = self.rms(x, p[n + "input_layernorm.weight"])
            q = lin(h, n + "self_attn.q_proj.weight").view(B, T, H, hs).transpose(1, 2)
            k = lin(h, n + "self_attn.k_proj.weight").view(B, T, KV, hs).transpose(1, 2)
            v = lin(h, n + "self_attn.v_proj.weight").view(B, T, KV, hs).transpose(1, 2)
            q, k = self.rope(q, T), self.rope(k, T)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=KV != H)
            y = y.transpose(1, 2).reshape(B, T, d)
            if sub:
                y = self.rms(y, p[n + "self_attn.attn_sub_norm.weight"])
            x = x + F.dropout(lin(y, n + "self_attn.o_proj.weight"), drop, self.training)
            h = self.rms(x, p[n + "post_attention_layernorm.weight"])
            h = F.silu(lin(h, n + "mlp.gate_proj.weight")) * lin(h, n + "mlp.up_proj.weight")
            if sub:
                h = self.rms(h, p[n + "mlp.ffn_sub_norm.weight"])
            x = x + F.dropout(lin(h, n + "mlp.down_proj.weight"), drop, self.training)
        x = self.rms(x, p["model.norm.weight"])
        head = p["model.embed_tokens.weight"] if c["tied_embeddings"] else p["lm_head.weight"]
        return x @ head.t()


def perm_matrix(p):
    """P with (P v)[a·p + b] = v[b·p + a]."""
    P = torch.zeros(p * p, p * p, dtype=torch.float64)
    for a in range(p):
        for b in range(p):
            P[a * p + b, b * p + a] = 1.0
    return P


def monarch_matrix(L1, L2):
    """Dense causal M = tril(Pᵀ · B(L1) · P · B(L2)) for one head; B(L) is block diagonal
    with (B(L) v)[b·p + i] = Σ_j L[b, i, j] v[b·p + j]."""
    p = L1.shape[0]
    P = perm_matrix(p).to(L1.dtype)
    M = P.t() @ torch.block_diag(*L1) @ P @ torch.block_diag(*L2)
    return torch.tril(M)


class MixerModel(Reference):
    """LLaMA's pre-norm blocks with a sequence mixer under model.layers.{i}.mixer. in
    place of attention; tied head, no biases, no positions."""
    K = 4

    def __init__(self, c):
        super().__init__(c)
        d, f, L, T, H = c["width"], c["ffn_width"], c["layers"], c["context"], c["heads"]
        self.p_block = round(math.sqrt(T))
        if self.p_block ** 2 != T:
            raise ValueError(f"context {T} is not a perfect square")
        resid = 0.02 / math.sqrt(2 * L)
        pb = self.p_block
        self.add("model.embed_tokens.weight", (c["vocab_size"], d), 0.02)
        for i in range(L):
            n = f"model.layers.{i}."
            self.add(n + "input_layernorm.weight", (d,), "ones")
            self.add_mixer(n + "mixer.", d, T, H, pb)
            self.add(n + "post_attention_layernorm.weight", (d,), "ones")
            self.add(n + "mlp.gate_proj.weight", (f, d), 0.02)
            self.add(n + "mlp.up_proj.weight", (f, d), 0.02)
            self.add(n + "mlp.down_proj.weight", (d, f), resid)
        self.add("model.norm.weight", (d,), "ones")

    rms = Llama.rms

    def conv(self, x, w):
        """y[t, c] = Σ_k w[c, k] · x[t − (K−1) + k, c], zero before the start; x: [B, T, d]."""
        K = w.shape[1]
        xt = F.pad(x.transpose(1, 2), (K - 1, 0))
        return F.conv1d(xt, w.unsqueeze(1), groups=w.shape[0]).transpose(1, 2)

    def monarch(self, x, prefix):
        B, T, d = x.shape
        L1, L2 = self.p[prefix + "monarch.L1"], self.p[prefix + "monarch.L2"]
        H = L1.shape[0]
        heads = []
        for h in range(H):
            M = monarch_matrix(L1[h], L2[h])[:T, :T]
            heads.append(torch.einsum("ts,bsc->btc", M, x[:, :, h * d // H:(h + 1) * d // H]))
        return torch.cat(heads, -1)

    def forward(self, idx):
        c, p = self.c, self.p
        drop = c["dropout"] if self.training else 0.0
        x = F.dropout(p["model.embed_tokens.weight"][idx], drop, self.training)
        for i in range(c["layers"]):
            n = f"model.layers.{i}."
            x = x + F.dropout(self.mixer(self.rms(x, p[n + "input_layernorm.weight"]), n + "mixer."), drop, self.training)
            h = self.rms(x, p[n + "post_attention_layernorm.weight"])
            h = F.silu(h @ p[n + "mlp.gate_proj.weight"].t()) * (h @ p[n + "mlp.up_proj.weight"].t())
            x = x + F.dropout(h @ p[n + "mlp.down_proj.weight"].t(), drop, self.training)
        x = self.rms(x, p["model.norm.weight"])
        return x @ p["model.embed_tokens.weight"].t()


class MonarchSLM(MixerModel):
    def add_mixer(self, n, d, T, H, pb):
        self.add(n + "conv.weight", (d, self.K), 1 / math.sqrt(self.K))
        self.add(n + "monarch.L1", (H, pb, pb, pb), 1 / math.sqrt(pb))
        self.add(n + "monarch.L2", (H, pb, pb, pb), 1 / math.sqrt(pb))
        self.add(n + "gate", (d,), "zeros")

    def mixer(self, x, n):
        return torch.sigmoid(self.p[n + "gate"]) * (self.conv(x, self.p[n + "conv.weight"]) + self.monarch(x, n))


class SymbioSLM(MixerModel):
    def add_mixer(self, n, d, T, H, pb):
        self.add(n + "conv.weight", (d, self.K), 1 / math.sqrt(self.K))
        self.add(n + "monarch.L1", (H, pb, pb, pb), 1 / math.sqrt(pb))
        self.add(n + "monarch.L2", (H, pb, pb, pb), 1 / math.sqrt(pb))
        self.add(n + "long_conv.weight", (d, T), 1 / T)
        self.add(n + "gate_logits", (3, d), "zeros")

    def mixer(self, x, n):
        w = torch.softmax(self.p[n + "gate_logits"], dim=0)
        organelles = [self.conv(x, self.p[n + "conv.weight"]), self.monarch(x, n), self.conv(x, self.p[n + "long_conv.weight"])]
        return sum(w[o] * organelles[o] for o in range(3))


def build(config):
    return {"gpt2": GPT2, "llama": Llama, "monarch": MonarchSLM, "symbio": SymbioSLM}[config["architecture"]](config)


def load(directory):
    with open(f"{directory}/config.json") as f:
        config = json.load(f)
    return build(config).load(f"{directory}/model.safetensors"), config
