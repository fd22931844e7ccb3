# Reference outputs of transformers for vlmq's vision-tower tests (run after tower-fixtures.mts).
# For each tiny checkpoint, in float64 with eager attention:
# - Qwen2-VL / Qwen2.5-VL: get_image_features(pixel_values, image_grid_thw), all images
#   concatenated ("features"), and the visual module called directly ("visual").
# - LLaVA-OneVision: the projector applied to vision_tower(...).hidden_states[vision_feature_layer]
#   as get_image_features selects it ("features"), the projector applied to last_hidden_state
#   (which has post_layernorm, to show the two differ: "post_layernorm"), and transformers' own
#   get_image_features for the views as several images of one sample (no anyres patching: each
#   view's features followed by image_newline, "packed").
import json, os, traceback
import torch, transformers
from safetensors.torch import load_file, save_file

torch.backends.cuda.matmul.allow_tf32 = False
root = ".devcheck/tower-fixtures"
out = os.environ.get("OUT", "/tmp")
classes = {
    "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
    "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
    "llava_onevision": transformers.LlavaOnevisionForConditionalGeneration,
}
print("transformers", transformers.__version__, "torch", torch.__version__, flush=True)


def unwrap(x):
    """A tensor from what get_image_features / visual return across versions: a tensor, a list of
    per-image tensors, or an output object whose pooler_output holds the merged features."""
    if getattr(x, "pooler_output", None) is not None:
        x = x.pooler_output
    elif not isinstance(x, (torch.Tensor, list, tuple)) and getattr(x, "last_hidden_state", None) is not None:
        x = x.last_hidden_state
    if isinstance(x, (list, tuple)):
        x = torch.cat([unwrap(t).reshape(-1, unwrap(t).shape[-1]) for t in x], 0)
    return x


for case in json.load(open(os.path.join(root, "cases.json"))):
    name, arch = case["name"], case["checkpoint"]["architecture"]
    try:
        model = classes[arch].from_pretrained(os.path.join(root, name), torch_dtype=torch.float64,
                                              attn_implementation="eager").eval()
        inputs = load_file(os.path.join(root, f"{name}-inputs.safetensors"))
        pv = inputs["pixel_values"].double()
        tensors = {}
        with torch.no_grad():
            if arch != "llava_onevision":
                grid = inputs["grid_thw"].long()
                tensors["features"] = unwrap(model.model.get_image_features(pixel_values=pv, image_grid_thw=grid))
                try:
                    tensors["visual"] = unwrap(model.model.visual(pv, grid_thw=grid))
                except Exception:
                    traceback.print_exc()
            else:
                layer = model.config.vision_feature_layer
                tower = model.model.vision_tower(pv, output_hidden_states=True)
                projector = model.model.multi_modal_projector
                print(name, "hidden_states", len(tower.hidden_states), "layer", layer, flush=True)
                tensors["features"] = projector(tower.hidden_states[layer]).reshape(-1, model.config.text_config.hidden_size)
                tensors["post_layernorm"] = projector(tower.last_hidden_state).reshape(-1, model.config.text_config.hidden_size)
                views, size = pv.shape[0], pv.shape[-1]
                try:
                    packed = model.model.get_image_features(pixel_values=pv, image_sizes=torch.tensor([[size, size]] * views),
                                                            batch_num_images=torch.tensor([views]))
                    tensors["packed"] = unwrap(packed)
                except Exception:
                    traceback.print_exc()
        tensors = {k: v.float().contiguous() for k, v in tensors.items()}
        save_file(tensors, os.path.join(out, f"tower-{name}.safetensors"), metadata={
            "format": "pt", "transformers": transformers.__version__, "torch": torch.__version__,
            "computed_in": "float64", "case": json.dumps(case)})
        print(name, {k: tuple(v.shape) for k, v in tensors.items()}, flush=True)
    except Exception:
        traceback.print_exc()
