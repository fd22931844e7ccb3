# Reference outputs of transformers for vlmq's decoder tests (run after decoder-fixtures.mts).
# For each tiny checkpoint: seeded inputs_embeds F and U = F + noise, position ids (M-RoPE with an
# image-like 2 x 3 grid for Qwen, 1-D for LLaVA-OneVision), the hidden states entering every
# decoder layer and leaving the last one (for F), and for layer 0 the gradients of
# L = sum (B(U) - B(F))^2 with respect to the outputs of q_proj, k_proj, v_proj and o_proj, where
# B(h) = h + self_attn(input_layernorm(h)) as the model computes it (its own masking and RoPE).
import json, os
import numpy as np
import torch, transformers
from safetensors.torch import save_file

torch.backends.cuda.matmul.allow_tf32 = False
root = ".devcheck/decoder-fixtures"
out = os.environ.get("OUT", "/tmp")
classes = {
    "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
    "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
    "llava_onevision": transformers.LlavaOnevisionForConditionalGeneration,
}
for case in json.load(open(os.path.join(root, "cases.json"))):
    name, T = case["name"], case["tokens"]
    arch = case["checkpoint"]["architecture"]
    model = classes[arch].from_pretrained(os.path.join(root, name), torch_dtype=torch.float64).eval()
    lm = model.model.language_model
    H = lm.config.hidden_size
    rng = np.random.default_rng(1000 + T)
    f = torch.tensor(rng.standard_normal((1, T, H)) * 0.5)
    u = f + torch.tensor(rng.standard_normal((1, T, H)) * 0.05)
    if arch == "llava_onevision":
        pos = torch.arange(T).view(1, T)
        positions = pos[0].to(torch.int32)
    else:
        # text 3, image 2 x 3 merged grid at p = 3 (t = 3, h = 3..4, w = 3..5), text from 3 + 3 = 6
        t_, h_, w_ = [], [], []
        for i in range(3): t_.append(i); h_.append(i); w_.append(i)
        for hi in range(2):
            for wi in range(3): t_.append(3); h_.append(3 + hi); w_.append(3 + wi)
        for i in range(T - 9): t_.append(6 + i); h_.append(6 + i); w_.append(6 + i)
        pos = torch.tensor([t_, h_, w_]).view(3, 1, T)
        positions = pos[:, 0, :].to(torch.int32).contiguous()
    tensors = {"f": f[0].float().contiguous(), "u": u[0].float().contiguous(), "positions": positions}

    # hidden states entering each layer, and the output of the last one (before the final norm)
    captured = {}
    last = lm.layers[-1]
    hook = last.register_forward_hook(lambda m, a, o: captured.__setitem__("last", (o[0] if isinstance(o, tuple) else o).detach()))
    with torch.no_grad():
        res = lm(inputs_embeds=f, position_ids=pos, output_hidden_states=True, use_cache=False)
    hook.remove()
    n = len(lm.layers)
    for l in range(n):
        tensors[f"hidden.{l}"] = res.hidden_states[l][0].float().contiguous()
    tensors[f"hidden.{n}"] = captured["last"][0].float().contiguous()

    # the attention block of layer 0 and the gradients at its projection outputs
    layer0 = lm.layers[0]
    outs = {}
    def keep(key):
        def hook(m, a, o):
            if o.requires_grad:
                o.retain_grad()
            outs[key] = o
        return hook
    block = {}
    hooks = [getattr(layer0.self_attn, p).register_forward_hook(keep(p)) for p in ["q_proj", "k_proj", "v_proj", "o_proj"]]
    hooks.append(layer0.self_attn.register_forward_hook(lambda m, a, o: block.__setitem__("attn", o[0] if isinstance(o, tuple) else o)))
    with torch.no_grad():
        lm(inputs_embeds=f, position_ids=pos, use_cache=False)
        b_f = f + block["attn"]
    uu = u.clone().requires_grad_(False)
    lm(inputs_embeds=uu, position_ids=pos, use_cache=False)
    b_u = uu + block["attn"]
    loss = ((b_u - b_f) ** 2).sum()
    loss.backward()
    for h in hooks: h.remove()
    for p in ["q_proj", "k_proj", "v_proj", "o_proj"]:
        tensors[f"grad.{p}"] = outs[p].grad[0].float().contiguous()
    tensors["loss"] = loss.detach().reshape(1)
    save_file(tensors, os.path.join(out, f"{name}.safetensors"), metadata={
        "format": "pt", "transformers": transformers.__version__, "torch": torch.__version__,
        "computed_in": "float64", "case": json.dumps(case)})
    print(name, "loss", float(loss), {k: tuple(v.shape) for k, v in tensors.items()})
