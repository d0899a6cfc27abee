"""Conformance: flow_grpo's remote reward clients against rewardd's POST /.

Replays yifan123/flow_grpo@54809b5 flow_grpo/rewards.py (the clients are the
same at ac4c86e and 94e23ee):
  - deqa_score_remote (111-158), geneval_score (160-229) and
    unifiedreward_score_remote (231-282): requests.Session() with
    HTTPAdapter(max_retries=Retry(total=1000, backoff_factor=1,
    status_forcelist=[500], allowed_methods=False)); the VAE output (float
    NCHW in [0, 1]) → (x*255).round().clamp(0,255).to(uint8) → NHWC →
    np.array_split(images, ceil(n/64)) → Image.fromarray(img).save(buf,
    "JPEG") per image; sess.post(url, data=pickle.dumps(data), timeout=120);
    pickle.loads(response.content) whatever the status; the lists are
    concatenated over the chunks and GenEval's group dicts merged with
    .items();
  - the trainer's step that reads the answer (scripts/train_sd3.py:693-696):
    every returned list becomes a tensor, so it must hold exactly n numbers.
The one configuration change: each client's `url` is rewardd's address.
Checked: every value against the PyTorch oracle of imgrl_lib (the clip kind's
default reward, the mean of the item's dimensions: `aesthetic` alone for DeQA
(no prompt), text_alignment and aesthetic for GenEval/UnifiedReward);
GenEval's -10.0 for images of another tag; Python 3.14's default protocol 5;
a code-running pickle and an undecodable image are 4xx with a pickled
{"error"} (flow_grpo would retry a 500 a thousand times) and run nothing.
Usage: test_flow_grpo.py REWARDD_EXE CLIP_HARNESS
"""
import io
import os
import pickle
import sys
import time
from collections import defaultdict

import imgrl_lib as L
from imgrl_lib import H, np, torch, Image

try:
    import requests
    from requests.adapters import HTTPAdapter, Retry
except ImportError as e:  # pragma: no cover
    H.skip(f"python3-requests missing ({e})")

EXE, CLIP_HARNESS = sys.argv[1], sys.argv[2]
failures = []


def session():
    """rewards.py:121-125: the retry policy of all three clients."""
    sess = requests.Session()
    retries = Retry(total=1000, backoff_factor=1, status_forcelist=[500], allowed_methods=False)
    sess.mount("http://", HTTPAdapter(max_retries=retries))
    return sess


def to_uint8_nhwc(images):
    images = (images * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return images.transpose(0, 2, 3, 1)  # NCHW -> NHWC


def jpegs(image_batch):
    out = []
    for image in image_batch:
        img = Image.fromarray(image)
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG")
        out.append(buffer.getvalue())
    return out


def deqa_score_remote(url, protocol=None):
    batch_size = 64
    sess = session()

    def _fn(images, prompts, metadata):
        del prompts
        if isinstance(images, torch.Tensor):
            images = to_uint8_nhwc(images)
        images_batched = np.array_split(images, np.ceil(len(images) / batch_size))
        all_scores = []
        for image_batch in images_batched:
            data = {"images": jpegs(image_batch)}
            data_bytes = pickle.dumps(data) if protocol is None else pickle.dumps(data, protocol=protocol)
            response = sess.post(url, data=data_bytes, timeout=120)
            response_data = pickle.loads(response.content)
            all_scores += response_data["outputs"]
        return all_scores, {}
    return _fn


def geneval_score(url):
    batch_size = 64
    sess = session()

    def _fn(images, prompts, metadatas, only_strict):
        del prompts
        if isinstance(images, torch.Tensor):
            images = to_uint8_nhwc(images)
        images_batched = np.array_split(images, np.ceil(len(images) / batch_size))
        metadatas_batched = np.array_split(metadatas, np.ceil(len(metadatas) / batch_size))
        all_scores, all_rewards, all_strict_rewards = [], [], []
        all_group_strict_rewards, all_group_rewards = [], []
        for image_batch, metadata_batched in zip(images_batched, metadatas_batched):
            data = {"images": jpegs(image_batch), "meta_datas": list(metadata_batched), "only_strict": only_strict}
            response = sess.post(url, data=pickle.dumps(data), timeout=120)
            response_data = pickle.loads(response.content)
            all_scores += response_data["scores"]
            all_rewards += response_data["rewards"]
            all_strict_rewards += response_data["strict_rewards"]
            all_group_strict_rewards.append(response_data["group_strict_rewards"])
            all_group_rewards.append(response_data["group_rewards"])
        gs, gr = defaultdict(list), defaultdict(list)
        for current_dict in all_group_strict_rewards:
            for key, value in current_dict.items():
                gs[key].extend(value)
        for current_dict in all_group_rewards:
            for key, value in current_dict.items():
                gr[key].extend(value)
        return all_scores, all_rewards, all_strict_rewards, dict(gr), dict(gs)
    return _fn


def unifiedreward_score_remote(url):
    batch_size = 64
    sess = session()

    def _fn(images, prompts, metadata):
        if isinstance(images, torch.Tensor):
            images = to_uint8_nhwc(images)
        images_batched = np.array_split(images, np.ceil(len(images) / batch_size))
        prompts_batched = np.array_split(prompts, np.ceil(len(prompts) / batch_size))
        all_scores = []
        for image_batch, prompt_batch in zip(images_batched, prompts_batched):
            data = {"images": jpegs(image_batch), "prompts": prompt_batch}
            response = sess.post(url, data=pickle.dumps(data), timeout=120)
            response_data = pickle.loads(response.content)
            all_scores += response_data["outputs"]
        return all_scores, {}
    return _fn


def trainer_step(values):
    """train_sd3.py:693-696: one tensor per returned list."""
    return torch.as_tensor(values).float()


def oracle_jpegs(images):
    return jpegs(to_uint8_nhwc(images))


def main():
    tiny = L.TinyClip(CLIP_HARNESS)
    d = H.Daemon(EXE, {"models": {"pick": tiny.model_config()}})
    url = "http://127.0.0.1:%d" % d.port
    try:
        # DeQA: images only -> the aesthetic head alone; 9 = train_batch_size, 70 = two chunks
        for n, proto in ((9, None), (70, None), (5, 5)):
            images = L.trainer_images(n, seed=n)
            scores, _ = deqa_score_remote(url, proto)(images, ["unused"] * n, [{}] * n)
            t = trainer_step(scores)
            want = [tiny.expect(j)[1] for j in oracle_jpegs(images)]
            w = L.check_close(failures, f"deqa n={n} protocol={proto or 'default'}", t.tolist(), want)
            print(f"deqa n={n} protocol={proto or pickle.DEFAULT_PROTOCOL}: worst rel {w:.2e}")

        # UnifiedReward: prompts as a numpy '<U' array (a GRPO group repeats each prompt)
        prompts = ("a cat on a mat", "a dog 🐶 in the snow", "a cat on a mat", "a red cube left of a sphere",
                   "a dog 🐶 in the snow", "x")
        images = L.trainer_images(len(prompts), seed=3)
        scores, _ = unifiedreward_score_remote(url)(images, prompts, [{}] * len(prompts))
        want = [tiny.expect(j, prompt=p)[1] for j, p in zip(oracle_jpegs(images), prompts)]
        w = L.check_close(failures, "unifiedreward", trainer_step(scores).tolist(), want)
        print(f"unifiedreward n={len(prompts)}: worst rel {w:.2e}")

        # GenEval: the prompt is meta_datas[i]["prompt"]; group dicts per tag with -10.0 elsewhere
        metas = [{"tag": "counting", "include": [{"class": "cat", "count": 2}], "prompt": "a photo of two cats"},
                 {"tag": "position", "include": [{"class": "dog", "count": 1},
                  {"class": "cup", "count": 1, "position": ["left of", 0]}], "prompt": "a dog left of a cup"},
                 {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a red car"}]
        metas = [metas[i % 3] for i in range(8)]
        images = L.trainer_images(len(metas), seed=4)
        sc, rw, st, gr, gs = geneval_score(url)(images, None, metas, False)
        want = [tiny.expect(j, prompt=m["prompt"])[1] for j, m in zip(oracle_jpegs(images), metas)]
        w = max(L.check_close(failures, "geneval scores", trainer_step(sc).tolist(), want),
                L.check_close(failures, "geneval rewards", trainer_step(rw).tolist(), want),
                L.check_close(failures, "geneval strict_rewards", trainer_step(st).tolist(), want))
        print(f"geneval n={len(metas)}: worst rel {w:.2e}")
        tags = {"single_object", "two_object", "counting", "colors", "position", "color_attr"}
        for name, g in (("group_rewards", gr), ("group_strict_rewards", gs)):
            if set(g) != tags:
                failures.append(f"geneval {name}: tags {sorted(g)} != {sorted(tags)}")
            for tag, vals in g.items():
                exp = [want[i] if metas[i]["tag"] == tag else -10.0 for i in range(len(metas))]
                L.check_close(failures, f"geneval {name}[{tag}]", vals, exp)

        # bad input: 4xx with a pickled {"error"}, never a 500 (the client would retry it 1000 times)
        marker = os.path.join(tiny.dir, "pwned")

        class System:
            def __reduce__(self):
                return (os.system, ("touch " + marker,))

        sess = session()
        for label, body, status, word in (
                ("os.system pickle", pickle.dumps({"images": [System()]}), 400, "system"),
                ("not an image", pickle.dumps({"images": [b"not a jpeg"]}), 415, "images[0]"),
                ("missing images", pickle.dumps({"pictures": []}), 400, "images"),
                ("not a pickle", b'{"images": []}', 400, "PROTO")):
            t0 = time.time()
            r = sess.post(url, data=body, timeout=120)
            doc = pickle.loads(r.content)
            if r.status_code != status or not isinstance(doc, dict) or word not in str(doc.get("error")):
                failures.append(f"{label}: HTTP {r.status_code} {doc!r:.200} (expected {status} naming {word!r})")
            if time.time() - t0 > 5:
                failures.append(f"{label}: took {time.time() - t0:.1f}s (retried?)")
            print(f"{label}: HTTP {r.status_code} {str(doc.get('error'))[:100]!r}")
        if os.path.exists(marker):
            failures.append("the os.system pickle ran")
        # the dashboard is still GET /
        g = requests.get(url + "/", timeout=10)
        if g.status_code != 200 or "html" not in g.headers.get("content-type", ""):
            failures.append(f"GET / is no longer the dashboard: {g.status_code} {g.headers.get('content-type')}")
    finally:
        d.stop()
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("flow_grpo DeQA, GenEval and UnifiedReward clients: OK")


if __name__ == "__main__":
    main()
