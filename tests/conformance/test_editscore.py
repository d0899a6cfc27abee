"""Conformance: EditScore / OmniGen2-RL's reward client and proxy hop against rewardd's POST /.

Replays VectorSpaceLab/EditScore@6e0f1b9 examples/OmniGen2-RL/:
  - omnigen2/grpo/reward_client_edit.py:36-126: evaluate_images() makes a
    RewardClient(proxy_host, proxy_port, timeout=600, max_retries=1) and posts
    pickle.dumps({"input_images": [[PIL.Image]], "output_image": [PIL.Image],
    "meta_datas": [json str], "server_type": "vlm"}) with Content-Type
    application/octet-stream; on 200 it unpickles and reads scores, rewards,
    reasoning and meta_data with .get(k, []); anything else is a retry, then
    None;
  - train.py:660-702: each meta_data is json.dumps(dataset meta + "id");
    sources are the dataset's PIL images (here: opened PNG with an iTXt XMP
    chunk, opened JPEG with EXIF dpi, RGB, and one source object shared by a
    GRPO group, as reward_server_sanity_check.py sends), outputs the
    pipeline's output_type="pil" RGB images; the rewards are split into
    local batches, `assert len(rewards) == len(reasoning) == len(meta_data) ==
    local_batch_size`, then torch.tensor(rewards);
  - reward_server/reward_proxy.py:118-135 (the worker hop): requests.post of
    {"input_images", "output_image", "meta_data": [dict]} with
    raise_for_status and pickle.loads, then reorder_results (24-98) by
    meta_data["original_index"], reading score / reward / reasoning /
    strict_reward.
The one configuration change: the reward server config's
`server: {hosts: [127.0.0.1], proxy_port: <rewardd's port>}`.
Oracle: imgrl_lib's PyTorch CLIP reference; an edit item has
image_similarity, edit_direction (the instruction against the empty caption)
and the aesthetic head, and the reward is their mean.
Usage: test_editscore.py REWARDD_EXE CLIP_HARNESS
"""
import io
import json
import logging
import pickle
import sys
import time
from typing import Any, Dict, List

import imgrl_lib as L
from imgrl_lib import H, np, torch, Image

try:
    import requests
    from PIL import PngImagePlugin
except ImportError as e:  # pragma: no cover
    H.skip(f"python3-requests / Pillow missing ({e})")

EXE, CLIP_HARNESS = sys.argv[1], sys.argv[2]
failures = []
logger = logging.getLogger("reward_client_edit")


class RewardClient:
    def __init__(self, proxy_host="127.0.0.1", proxy_port=23456, timeout=300, max_retries=3):
        self.proxy_url = f"http://{proxy_host}:{proxy_port}"
        self.timeout = timeout
        self.max_retries = max_retries

    def evaluate(self, input_images, output_image, meta_datas, server_type="geneval"):
        if not output_image:
            return [], [], [], []
        request_data = {"input_images": input_images, "output_image": output_image, "meta_datas": meta_datas,
                        "server_type": server_type}
        last_exception = None
        for attempt in range(self.max_retries):
            try:
                pickled_data = pickle.dumps(request_data)
                response = requests.post(self.proxy_url, data=pickled_data,
                                         headers={"Content-Type": "application/octet-stream"}, timeout=self.timeout)
                if response.status_code == 200:
                    result = pickle.loads(response.content)
                    scores = result.get("scores", [])
                    rewards = result.get("rewards", [])
                    reasoning = result.get("reasoning", [])
                    meta_data = result.get("meta_data", [])
                    if len(scores) != len(output_image) or len(rewards) != len(output_image):
                        logger.warning("Return data length mismatch")
                    return scores, rewards, reasoning, meta_data
                else:
                    last_exception = RuntimeError(f"HTTP {response.status_code}")
            except requests.exceptions.Timeout as e:
                last_exception = e
            except Exception as e:
                last_exception = e
            if attempt < self.max_retries - 1:
                time.sleep(2 ** attempt)
        logger.error(f"All retries failed, last exception: {last_exception}")
        return None


def evaluate_images(input_images, output_image, meta_datas, proxy_host="127.0.0.1", proxy_port=23456,
                    server_type="vlm"):
    client = RewardClient(proxy_host, proxy_port, timeout=600, max_retries=1)
    return client.evaluate(input_images, output_image, meta_datas, server_type)


def send_to_worker(server_url: str, batch_data: Dict[str, Any]) -> List[Dict[str, Any]]:
    """reward_proxy.py:118-135, without its swallow-and-return-None (the test wants the error)."""
    response = requests.post(server_url, data=pickle.dumps(batch_data),
                             headers={"Content-Type": "application/octet-stream"}, timeout=600)
    response.raise_for_status()
    return pickle.loads(response.content)


def rgb_image(seed, w=40, h=36):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 4 % 256], -1)
    a = np.clip(a + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a)


def opened_png(seed):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta/>", lang="en", tkey="xmp")
    buf = io.BytesIO()
    rgb_image(seed).convert("RGBA").save(buf, "PNG", pnginfo=info)
    im = Image.open(io.BytesIO(buf.getvalue()))
    im.load()
    return im


def opened_jpeg(seed):
    buf = io.BytesIO()
    rgb_image(seed).save(buf, "JPEG", dpi=(300, 300))
    im = Image.open(io.BytesIO(buf.getvalue()))
    im.load()
    return im


def main():
    tiny = L.TinyClip(CLIP_HARNESS)
    d = H.Daemon(EXE, {"models": {"edit": tiny.model_config()}})
    try:
        # a global batch of 2 processes x 3 items; item 0..2 share one source object (a GRPO group)
        shared = rgb_image(100)
        sources = [[shared], [shared], [shared], [opened_png(101)], [opened_jpeg(102)], [rgb_image(103).convert("L")]]
        outputs = [rgb_image(i) for i in range(6)]
        instructions = ["make it snowy"] * 3 + ["add a red hat", "turn the sky purple", "make it a painting"]
        metas = []
        for i, ins in enumerate(instructions):
            m = {"instruction": ins, "task_type": "edit"}
            m["id"] = f"{i}"
            metas.append(json.dumps(m))
        local_batch_size = 3
        scores, rewards, reasoning, meta_data = evaluate_images(
            input_images=sources, output_image=outputs, meta_datas=metas, proxy_host="127.0.0.1",
            proxy_port=d.port, server_type="vlm")
        rewards_to_scatter = [rewards[i:i + local_batch_size] for i in range(0, len(rewards), local_batch_size)]
        reasoning_to_scatter = [reasoning[i:i + local_batch_size] for i in range(0, len(reasoning), local_batch_size)]
        meta_to_scatter = [meta_data[i:i + local_batch_size] for i in range(0, len(meta_data), local_batch_size)]
        for r, why, m in zip(rewards_to_scatter, reasoning_to_scatter, meta_to_scatter):
            assert len(r) == len(why) == len(m) == local_batch_size
            torch.tensor(r, dtype=torch.float32)

        exp = [tiny.expect(o, source=s[0], instruction=ins) for o, s, ins in zip(outputs, sources, instructions)]
        want = [e[1] for e in exp]
        w = max(L.check_close(failures, "EditScore rewards", rewards, want),
                L.check_close(failures, "EditScore scores", scores, want))
        for i, (why, (dims, _)) in enumerate(zip(reasoning, exp)):
            got = json.loads(why)
            if set(got) != set(dims):
                failures.append(f"reasoning[{i}]: dims {sorted(got)} != {sorted(dims)}")
                continue
            w = max(w, L.check_close(failures, f"reasoning[{i}]", [got[k] for k in sorted(dims)],
                                     [dims[k] for k in sorted(dims)]))
        for i, m in enumerate(meta_data):
            if m != dict(json.loads(metas[i]), original_index=i):
                failures.append(f"meta_data[{i}] = {m!r}")
        print(f"EditScore proxy protocol, {len(outputs)} items: worst rel {w:.2e}")

        # the proxy's worker hop: meta_data as dicts (with original_index), a list of dicts back
        url = "http://127.0.0.1:%d" % d.port
        group = [i for i in range(6) if instructions[i] == "make it snowy"]
        hop = {"input_images": [sources[i] for i in group], "output_image": [outputs[i] for i in group],
               "meta_data": [dict(json.loads(metas[i]), original_index=i) for i in group]}
        items = send_to_worker(url, hop)
        if len(items) != len(group):
            failures.append(f"worker hop: {len(items)} results for {len(group)} items")
        for k, it in zip(group, items):
            if it.get("meta_data", {}).get("original_index") != k:
                failures.append(f"worker hop: meta_data {it.get('meta_data')!r}")
            L.check_close(failures, f"worker hop[{k}] reward", [it.get("reward", 0.0)], [want[k]])
            L.check_close(failures, f"worker hop[{k}] score", [it.get("score", 0.0)], [want[k]])

        # bad input: the client sees a non-200 (and returns None after its one try); rewardd says why
        for label, body, status, word in (
                ("no instruction", {"input_images": [[shared]], "output_image": [outputs[0]],
                                    "meta_datas": [json.dumps({"id": "0"})]}, 400, "meta_datas[0].instruction"),
                ("integer image", {"input_images": [[shared]], "output_image": [outputs[0].convert("L").convert("I")],
                                  "meta_datas": [metas[0]]}, 415, "output_image[0]"),
                ("lengths", {"input_images": [[shared]], "output_image": outputs[:2], "meta_datas": metas[:2]},
                 400, "input_images")):
            r = requests.post(url, data=pickle.dumps(body), headers={"Content-Type": "application/octet-stream"},
                              timeout=60)
            doc = pickle.loads(r.content)
            if r.status_code != status or word not in str(doc.get("error")):
                failures.append(f"{label}: HTTP {r.status_code} {doc!r:.200} (expected {status} naming {word!r})")
            print(f"{label}: HTTP {r.status_code} {str(doc.get('error'))[:100]!r}")
        if evaluate_images([[shared]], [outputs[0]], [json.dumps({"id": "0"})], proxy_port=d.port) is not None:
            failures.append("the client took a refused request for an answer")
    finally:
        d.stop()
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("EditScore client, proxy protocol and worker hop: OK")


if __name__ == "__main__":
    main()
