"""onnxruntime-genai's own C++ generation loop on one of chatmirror's graphs, for `npm run bench:compare`.

    python genai_loop.py MODEL_DIR GRAPH_FILE WORK_DIR

Writes WORK_DIR/genai_config.json from the model directory's config.json (the layout onnxruntime-genai's model
builder emits for a GroupQueryAttention graph: KV buffers shared between past and present, written in place) and
links WORK_DIR/model.onnx to the graph, so genai runs the very file the engine loads. Then answers one JSON line
per request on stdin, {"ids": [...], "newTokens": N}, with {"tokens": [...], "firstTokenMs": ms}: greedy, EOS
masked until N tokens (min_length), the prompt given as ids. The first line out is {"ready": ..., "version": ..., "onnxruntime": ...}.
"""
import json
import os
import sys
import time

import onnxruntime
import onnxruntime_genai as og


def genai_config(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        c = json.load(f)
    eos = c["eos_token_id"]
    return {
        "model": {
            "type": "llama",
            "bos_token_id": c["bos_token_id"],
            "eos_token_id": eos,
            "pad_token_id": c.get("pad_token_id", eos if isinstance(eos, int) else eos[0]),
            "vocab_size": c["vocab_size"],
            "context_length": c["max_position_embeddings"],
            "decoder": {
                # One intra-op thread per core the process may run on, as the engine gets from onnxruntime's
                # default: genai's own default ran a single thread on the 2-core machine (about 50 tok/s
                # int8 where 2 threads give about 80). Spinning stays on, as in the engine.
                "session_options": {
                    "log_id": "onnxruntime-genai",
                    "provider_options": [],
                    "intra_op_num_threads": len(os.sched_getaffinity(0)),
                },
                "filename": "model.onnx",
                "head_size": c.get("head_dim", c["hidden_size"] // c["num_attention_heads"]),
                "hidden_size": c["hidden_size"],
                "num_attention_heads": c["num_attention_heads"],
                "num_hidden_layers": c["num_hidden_layers"],
                "num_key_value_heads": c["num_key_value_heads"],
                "inputs": {
                    "input_ids": "input_ids",
                    "attention_mask": "attention_mask",
                    "position_ids": "position_ids",
                    "past_key_names": "past_key_values.%d.key",
                    "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
            },
        },
        "search": {"do_sample": False, "num_beams": 1, "past_present_share_buffer": True},
    }


def main() -> None:
    model_dir, graph, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "genai_config.json"), "w", encoding="utf-8") as f:
        json.dump(genai_config(model_dir), f, indent=2)
    link = os.path.join(work, "model.onnx")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.abspath(os.path.join(model_dir, graph)), link)
    model = og.Model(work)
    print(json.dumps({"ready": True, "version": og.__version__, "onnxruntime": onnxruntime.__version__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        ids, n = req["ids"], req["newTokens"]
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(ids) + n, min_length=len(ids) + n)
        t0 = time.perf_counter()
        gen = og.Generator(model, params)
        gen.append_tokens(ids)
        tokens: list[int] = []
        first_ms = 0.0
        while not gen.is_done():
            gen.generate_next_token()
            tokens.append(int(gen.get_next_tokens()[0]))
            if len(tokens) == 1:
                first_ms = (time.perf_counter() - t0) * 1000
        del gen
        print(json.dumps({"tokens": tokens, "firstTokenMs": first_ms}), flush=True)


if __name__ == "__main__":
    main()
