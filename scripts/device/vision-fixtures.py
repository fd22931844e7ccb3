# Reference outputs of the Hugging Face processors and models for vlmq's image, text and
# vision-tower tests (run after vision-fixtures.mts, which writes the tiny checkpoints and images
# into .devcheck/vision-fixtures). For each checkpoint, in float64:
#   image.{i}.pixel_values / .grid (Qwen image_grid_thw) / .image_size (LLaVA)  one image at a time,
#       with the slow (PIL) image processor, and fast.image.{i}.pixel_values with the fast one;
#   sample.input_ids, sample.positions (what the language model receives as position_ids),
#   sample.embeddings (the input of decoder layer 0: token embeddings with the image features in)
#       for the conversation of the case, rendered by the processor's chat template;
#   sample.vision (the vision tower's output for the sample's images, when it could be captured).
# Writes processor-<name>.safetensors and log.txt to $OUT.
import json, os, traceback
import torch, transformers
from PIL import Image
from safetensors.torch import save_file

torch.backends.cuda.matmul.allow_tf32 = False
root = ".devcheck/vision-fixtures"
out = os.environ.get("OUT", "/tmp")
log = open(os.path.join(out, "log.txt"), "w")
def say(*a):
    print(*a); print(*a, file=log); log.flush()

say("transformers", transformers.__version__, "torch", torch.__version__)
classes = {
    "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
    "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
    "llava_onevision": transformers.LlavaOnevisionForConditionalGeneration,
}

def image_processor(path, fast):
    try:
        return transformers.AutoImageProcessor.from_pretrained(path, use_fast=fast)
    except Exception as e:
        say("image processor use_fast=%s failed: %r" % (fast, e))
        return None

def capture_output(module, store, key):
    def hook(m, a, o):
        x = o
        if not torch.is_tensor(x):
            x = getattr(o, "pooler_output", None) if getattr(o, "pooler_output", None) is not None else getattr(o, "last_hidden_state", o)
        if isinstance(x, (list, tuple)):
            x = torch.cat([t.reshape(-1, t.shape[-1]) for t in x], 0)
        if torch.is_tensor(x):
            store[key] = x.detach()
    return module.register_forward_hook(hook)

spec = json.load(open(os.path.join(root, "cases.json")))
all_images = [Image.open(os.path.join(root, "images", im["file"])) for im in spec["images"]]
for case in spec["cases"]:
    name = case["name"]
    arch = case["checkpoint"]["architecture"]
    path = os.path.join(root, name)
    tensors, meta = {}, {"architecture": arch, "computed_in": "float64", "transformers": transformers.__version__}
    try:
        images = all_images
        slow, fast = image_processor(path, False), image_processor(path, True)
        meta["slow"], meta["fast"] = type(slow).__name__, type(fast).__name__
        fast_vs_slow = []
        for i in range(len(case["images"])):
            res = slow(images=[images[i]], return_tensors="pt")
            tensors[f"image.{i}.pixel_values"] = res["pixel_values"].float().contiguous()
            if "image_grid_thw" in res:
                tensors[f"image.{i}.grid"] = res["image_grid_thw"][0].to(torch.int32).contiguous()
            if "image_sizes" in res:
                tensors[f"image.{i}.image_size"] = torch.as_tensor(res["image_sizes"][0]).to(torch.int32).contiguous()
            if fast is not None:
                other = fast(images=[images[i]], return_tensors="pt")["pixel_values"].float()
                same_shape = list(other.shape) == list(res["pixel_values"].shape)
                fast_vs_slow.append(float((other - res["pixel_values"].float()).abs().max()) if same_shape else "shape %s vs %s" % (list(other.shape), list(res["pixel_values"].shape)))
        meta["fast_vs_slow_max_abs"] = fast_vs_slow
        processor = transformers.AutoProcessor.from_pretrained(path, use_fast=False)
        meta["processor"] = type(processor).__name__
        sample = case["sample"]
        content = [{"type": "image"} for _ in sample["images"]] + [{"type": "text", "text": sample["prompt"]}]
        messages = [{"role": "user", "content": content}, {"role": "assistant", "content": [{"type": "text", "text": sample["answer"]}]}]
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        meta["text"] = text
        inputs = processor(text=[text], images=[images[i] for i in sample["images"]], return_tensors="pt")
        tensors["sample.input_ids"] = inputs["input_ids"][0].to(torch.int32).contiguous()

        model = classes[arch].from_pretrained(path, torch_dtype=torch.float64).eval()
        captured = {}
        lm = model.model.language_model
        def pre(m, args, kwargs):
            if kwargs.get("position_ids") is not None:
                captured["positions"] = kwargs["position_ids"].detach()
        handle = lm.register_forward_pre_hook(pre, with_kwargs=True)
        tower = getattr(model.model, "visual", None)
        hooks = [handle]
        if tower is not None:
            hooks.append(capture_output(tower, captured, "vision"))
        model_inputs = {k: (v.double() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in inputs.items()}
        with torch.no_grad():
            res = model(**model_inputs, output_hidden_states=True, use_cache=False)
        for h in hooks:
            h.remove()
        tensors["sample.embeddings"] = res.hidden_states[0][0].float().contiguous()
        if "positions" in captured:
            p = captured["positions"]
            p = p[:, 0, :] if p.dim() == 3 else p[0]
            if p.shape[0] == 4:  # newer transformers prepend a text-position row
                meta["positions_note"] = "dropped the leading text-position row of a [4, 1, T] position_ids"
                p = p[1:]
            tensors["sample.positions"] = p.to(torch.int32).contiguous()
        if "vision" in captured:
            tensors["sample.vision"] = captured["vision"].float().contiguous()
        say(name, "ok", {k: list(v.shape) for k, v in tensors.items()})
    except Exception:
        say(name, "FAILED", traceback.format_exc())
        meta["error"] = traceback.format_exc()[-2000:]
    save_file(tensors, os.path.join(out, f"processor-{name}.safetensors"), metadata={k: (v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()})
