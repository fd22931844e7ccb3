# Run after transformers-check.mts (see there). Loads vlmq's generated tiny checkpoints and fake-quant exports with transformers and reports
# missing/unexpected keys; saves transformers' own tensor names for the same configs.
import json, os, sys, traceback
import torch, transformers
from safetensors import safe_open
print("transformers", transformers.__version__, "torch", torch.__version__)
classes = {
  "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
  "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
  "llava_onevision": transformers.LlavaOnevisionForConditionalGeneration,
}
root = ".devcheck/models"
out = os.environ.get("OUT", "/tmp")
report = {}
for name in sorted(os.listdir(root)):
    if name.endswith("-gptq"): continue
    arch = name.split("-")[0]
    path = os.path.join(root, name)
    entry = {}
    try:
        model, info = classes[arch].from_pretrained(path, output_loading_info=True, torch_dtype=torch.float32)
        entry = {k: sorted(map(str, v))[:20] for k, v in info.items()}
        ids = torch.tensor([[1, 2, 3, 4, 5]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        entry["logits_shape"] = list(logits.shape)
        entry["finite"] = bool(torch.isfinite(logits).all())
        if not name.endswith("-fq"):
            saved = os.path.join("/tmp/saved", name)
            model.save_pretrained(saved)
            names = []
            for f in sorted(os.listdir(saved)):
                if f.endswith(".safetensors"):
                    with safe_open(os.path.join(saved, f), "pt") as sf:
                        names += list(sf.keys())
            ours = []
            for f in sorted(os.listdir(path)):
                if f.endswith(".safetensors"):
                    with safe_open(os.path.join(path, f), "pt") as sf:
                        ours += list(sf.keys())
            entry["saved_minus_ours"] = sorted(set(names) - set(ours))[:30]
            entry["ours_minus_saved"] = sorted(set(ours) - set(names))[:30]
    except Exception as e:
        entry["error"] = traceback.format_exc()[-3000:]
    report[name] = entry
    print(name, json.dumps(entry)[:2000])
json.dump(report, open(os.path.join(out, "transformers-load.json"), "w"), indent=1)
