#!/usr/bin/python3
"""The edit-reward peer for bench/bench_clip_e2e.py: FastAPI + uvicorn + PyTorch.

    /usr/bin/python3 bench/fastapi_clip_peer.py PORT MODEL_DIR THREADS IDS_JSON

What a researcher would write to serve a CLIP edit reward in Python: FastAPI
(Debian python3-fastapi, one uvicorn worker), POST /v1/rewards with the same
body rewardd takes ({"items": [{"instruction", "image", "source_image"}]}),
base64 JPEGs decoded with Pillow, CLIPImageProcessor's arithmetic
(tests/parity/test_clip_preprocess.hf_preprocess, numpy), and both CLIP
towers in float32 PyTorch (tests/parity/clip_ref.py, torch.inference_mode,
torch.set_num_threads(THREADS)), one forward per request. It returns
image_similarity and edit_direction as rewardd does.

Tokenisation: IDS_JSON maps each text to its CLIP token ids (made once by
the benchmark with rewardd's tokenizer, which matches HF tokenizers' ids);
the peer looks them up instead of running a Python BPE. That is a few
microseconds against ~100 ms of towers, and it favours the peer.
"""
import base64
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "parity"))

import torch  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from PIL import Image  # noqa: E402

import clip_ref  # noqa: E402
from test_clip_preprocess import hf_preprocess  # noqa: E402
from test_clip_torch import prep_cfg  # noqa: E402

PORT, FOLDER, THREADS, IDS = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(THREADS)
REF = clip_ref.CLIPRef(FOLDER, dtype=torch.float32)
CFG = prep_cfg(FOLDER)
with open(IDS) as f:
    TOKENS = json.load(f)
app = FastAPI()


def pixels(b64):
    im = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
    return torch.from_numpy(hf_preprocess(im, CFG)).float()


@app.post("/v1/rewards")
async def rewards(request: Request):
    body = await request.json()
    results = []
    with torch.inference_mode():
        for it in body["items"]:
            px = torch.stack([pixels(it["source_image"]), pixels(it["image"])])
            img = REF.image_embeds(px)
            txt = REF.text_embeds([TOKENS[""], TOKENS[it["instruction"]]])
            sim = float(REF.image_similarity(img[0], img[1]))
            edit = float(REF.edit_direction(img[0], img[1], txt[0], txt[1]))
            results.append({"scores": {"image_similarity": sim, "edit_direction": edit}})
    return JSONResponse({"results": results})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", workers=1)
