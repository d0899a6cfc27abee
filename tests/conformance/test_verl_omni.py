"""Conformance: verl-omni's http_scorer_client against rewardd's POST /.

Replays verl-project/verl-omni@0ef63e5
verl_omni/utils/reward_score/http_scorer_client.py:
  - _tensor_to_pil / _serialize_image (33-54): a uint8 CHW tensor (the reward
    manager's visual.py hands one per sample) -> permute(1, 2, 0) -> PIL ->
    convert("RGB") if needed -> JPEG at Pillow's default quality;
  - compute_score (72-146): pickle.dumps({"images": [jpeg], "prompts":
    [ground_truth], "metadata": {}}), one aiohttp.ClientSession(ClientTimeout
    (total=120)) reused, session.post(server_url, data=payload) (aiohttp:
    Content-Type application/octet-stream); status 200 or a retry on
    408/429/5xx (max_retries 2, back-off 0.5 s doubling), other statuses
    raise at once; pickle.loads; an "error" key raises; reward =
    float(response_data.get("scores")[0]);
  - the reward loop runs compute_score for every sample at once under
    asyncio.gather (docs/start/http_scorer.md:22): n concurrent one-image
    requests, which rewardd's batcher joins into batches.
The one configuration change: `server_url: http://127.0.0.1:<port>`.
Also the deepgen_rl edit-reward body the same docs point to
(rewards_services/common/utils.py: images {"source": [..], "edited": [..]},
prompts = instructions; the servers answer {"scores"}).
Oracle: imgrl_lib's PyTorch CLIP reference.
Usage: test_verl_omni.py REWARDD_EXE CLIP_HARNESS
"""
import asyncio
import io
import pickle
import sys

import imgrl_lib as L
from imgrl_lib import H, torch, Image

try:
    import aiohttp
    import requests
except ImportError as e:  # pragma: no cover
    H.skip(f"python3-aiohttp / python3-requests missing ({e})")

EXE, CLIP_HARNESS = sys.argv[1], sys.argv[2]
failures = []


def _tensor_to_pil(image):
    if image.ndim == 4:
        image = image[0]
    image = image.permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(image)


def _serialize_image(pil_image):
    if pil_image.mode != "RGB":
        pil_image = pil_image.convert("RGB")
    buf = io.BytesIO()
    pil_image.save(buf, format="JPEG")
    return buf.getvalue()


def _prepare_image_bytes(image):
    return _serialize_image(_tensor_to_pil(image))


def _error_detail(response_bytes):
    try:
        response_data = pickle.loads(response_bytes)
    except (pickle.UnpicklingError, EOFError):
        return response_bytes.decode("utf-8", errors="replace")
    if isinstance(response_data, dict) and "error" in response_data:
        return str(response_data["error"])
    return response_bytes.decode("utf-8", errors="replace")


async def compute_score(solution_image, ground_truth, server_url, max_retries=2, retry_backoff=0.5, **kwargs):
    loop = asyncio.get_running_loop()
    image_bytes = await loop.run_in_executor(None, _prepare_image_bytes, solution_image)
    payload = pickle.dumps({"images": [image_bytes], "prompts": [ground_truth], "metadata": {}})
    if not hasattr(compute_score, "_session") or compute_score._session.closed:
        timeout = aiohttp.ClientTimeout(total=120)
        compute_score._session = aiohttp.ClientSession(timeout=timeout)
    session = compute_score._session
    attempts = max_retries + 1
    last_error = None
    for attempt in range(attempts):
        try:
            async with session.post(server_url, data=payload) as resp:
                response_bytes = await resp.read()
                if resp.status != 200:
                    error = RuntimeError(f"Scorer server returned HTTP {resp.status}: {_error_detail(response_bytes)}")
                    retryable = resp.status in {408, 429} or 500 <= resp.status < 600
                    if not retryable:
                        raise error
                    last_error = error
                else:
                    response_data = pickle.loads(response_bytes)
                    break
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
            last_error = exc
        if attempt < max_retries:
            await asyncio.sleep(retry_backoff * (2 ** attempt))
    else:
        raise RuntimeError(f"HTTP scoring failed after {attempts} attempts: {last_error}") from last_error
    if "error" in response_data:
        raise RuntimeError(f"Scorer server error: {response_data['error']}")
    scores = response_data.get("scores")
    if not scores:
        raise RuntimeError("Scorer server returned no scores")
    return {"score": float(scores[0])}


async def reward_loop(images, prompts, url):
    try:
        return await asyncio.gather(*[compute_score(img, p, url) for img, p in zip(images, prompts)],
                                    return_exceptions=True)
    finally:
        await compute_score._session.close()


def main():
    tiny = L.TinyClip(CLIP_HARNESS)
    d = H.Daemon(EXE, {"models": {"pick": tiny.model_config()}})
    url = "http://127.0.0.1:%d" % d.port
    try:
        n = 24
        chw = (L.trainer_images(n, seed=9) * 255).round().to(torch.uint8)  # visual.py: uint8 CHW per sample
        prompts = [f"a photo of object {i % 6}" for i in range(n)]
        out = asyncio.run(reward_loop(list(chw), prompts, url))
        errs = [o for o in out if isinstance(o, Exception)]
        if errs:
            failures.append(f"{len(errs)} of {n} concurrent requests failed: {errs[0]}")
        else:
            want = [tiny.expect(_prepare_image_bytes(img), prompt=p)[1] for img, p in zip(chw, prompts)]
            w = L.check_close(failures, "verl-omni scores", [o["score"] for o in out], want)
            print(f"verl-omni: {n} concurrent one-image requests, worst rel {w:.2e}")

        # a 4xx is not retried and raises with rewardd's (pickled) message
        bad = asyncio.run(reward_loop([chw[0]], ["x"], url + "/?model=nope"))
        if not (isinstance(bad[0], RuntimeError) and "HTTP 404" in str(bad[0]) and "model" in str(bad[0])):
            failures.append(f"an unknown model gave {bad[0]!r}")
        print(f"unknown model: {str(bad[0])[:120]!r}")

        # deepgen_rl's edit-reward body: images {"source", "edited"}, prompts = instructions
        src = [_prepare_image_bytes(c) for c in chw[:3]]
        edited = [_prepare_image_bytes(c) for c in chw[3:6]]
        instr = ["make it brighter", "add snow", "make it brighter"]
        r = requests.post(url + "/", data=pickle.dumps({"images": {"source": src, "edited": edited},
                                                        "prompts": instr}), timeout=60)
        doc = pickle.loads(r.content)
        if r.status_code != 200 or "scores" not in doc:
            failures.append(f"deepgen edit: HTTP {r.status_code} {doc!r:.200}")
        else:
            want = [tiny.expect(e, source=s, instruction=t)[1] for e, s, t in zip(edited, src, instr)]
            w = L.check_close(failures, "deepgen edit scores", doc["scores"], want)
            print(f"deepgen edit body: worst rel {w:.2e}")
    finally:
        d.stop()
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("verl-omni http_scorer_client: OK")


if __name__ == "__main__":
    main()
