"""Conformance: Flow-Factory's RemoteRewardClient against rewardd's /health and /compute.

Replays X-GenGroup/Flow-Factory@696af07 src/flow_factory/rewards/my_reward_remote.py:
  - _image_to_b64 / _build_payload (55-92): PIL -> PNG -> standard base64;
    {"prompt", "image", "video", "condition_images", "condition_videos",
    "kwargs"}, None for what is absent;
  - RemoteRewardClient (97-141): the URL stripped of "/", a
    requests.Session; health_check is GET {url}/health, timeout 5, r.ok;
    compute posts json=payload to {url}/compute, raise_for_status, r.json(),
    a truthy "error" raises, returns data["rewards"]; 3 tries on
    requests.RequestException;
  - RemotePointwiseRewardModel (161-201): refuses to start unless the health
    check passes, then torch.tensor(rewards, dtype=float32).
The one configuration change: `server_url: http://127.0.0.1:<port>` in the
reward's config. Text-to-image (prompt + image) and edit (condition_images[i][0]
as the source, prompt as the instruction) against imgrl_lib's PyTorch CLIP
reference; a video request fails (415) after the client's three tries.
Usage: test_flow_factory.py REWARDD_EXE CLIP_HARNESS
"""
import base64
import io
import sys

import imgrl_lib as L
from imgrl_lib import H, torch, Image

try:
    import requests
except ImportError as e:  # pragma: no cover
    H.skip(f"python3-requests missing ({e})")

EXE, CLIP_HARNESS = sys.argv[1], sys.argv[2]
failures = []


def _image_to_b64(img):
    if isinstance(img, torch.Tensor):
        arr = (img.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype("uint8")
        img = Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _video_to_b64(video):
    return [_image_to_b64(frame) for frame in video]


def _build_payload(prompt, image=None, video=None, condition_images=None, condition_videos=None, **kwargs):
    return {
        "prompt": prompt,
        "image": [_image_to_b64(img) for img in image] if image else None,
        "video": [_video_to_b64(v) for v in video] if video else None,
        "condition_images": [[_image_to_b64(img) for img in imgs] for imgs in condition_images]
        if condition_images else None,
        "condition_videos": [[_video_to_b64(v) for v in vs] for vs in condition_videos]
        if condition_videos else None,
        "kwargs": kwargs if kwargs else None,
    }


class RemoteRewardClient:
    def __init__(self, server_url, timeout=60.0, retries=3):
        self.url = server_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self._session = requests.Session()

    def health_check(self):
        try:
            r = self._session.get(f"{self.url}/health", timeout=5.0)
            return r.ok
        except Exception:
            return False

    def compute(self, prompt, image=None, video=None, condition_images=None, condition_videos=None, **kwargs):
        payload = _build_payload(prompt, image, video, condition_images, condition_videos, **kwargs)
        for attempt in range(self.retries):
            try:
                r = self._session.post(f"{self.url}/compute", json=payload, timeout=self.timeout)
                r.raise_for_status()
                data = r.json()
                if data.get("error"):
                    raise RuntimeError(f"Server error: {data['error']}")
                return data["rewards"]
            except requests.RequestException as e:
                if attempt == self.retries - 1:
                    raise RuntimeError(f"Failed to connect to {self.url}: {e}")
        raise RuntimeError("Unreachable")


def main():
    tiny = L.TinyClip(CLIP_HARNESS)
    d = H.Daemon(EXE, {"models": {"pick": tiny.model_config()}})
    try:
        client = RemoteRewardClient(server_url="http://127.0.0.1:%d/" % d.port)
        if not client.health_check():
            failures.append("health check failed: the trainer would refuse to start")
        pil = [Image.fromarray((L.trainer_images(1, seed=20 + i)[0].permute(1, 2, 0).numpy() * 255).astype("uint8"))
               for i in range(6)]
        prompts = ["a castle at dusk", "two dogs", "a castle at dusk", "a bowl of soup"]
        rewards = torch.tensor(client.compute(prompt=prompts, image=pil[:4]), dtype=torch.float32)
        want = [tiny.expect(base64.b64decode(_image_to_b64(im)), prompt=p)[1] for im, p in zip(pil[:4], prompts)]
        w = L.check_close(failures, "text-to-image rewards", rewards.tolist(), want)
        print(f"Flow-Factory text-to-image, {len(prompts)} items: worst rel {w:.2e}")

        instr = ["make it night", "add a hat"]
        rewards = client.compute(prompt=instr, image=pil[4:6], condition_images=[[pil[0]], [pil[1], pil[2]]])
        want = [tiny.expect(base64.b64decode(_image_to_b64(e)), source=base64.b64decode(_image_to_b64(s)),
                            instruction=t)[1] for e, s, t in zip(pil[4:6], pil[:2], instr)]
        w = L.check_close(failures, "edit rewards", rewards, want)
        print(f"Flow-Factory edit, {len(instr)} items: worst rel {w:.2e}")

        try:
            client.compute(prompt=["a clip"], image=pil[:1], video=[pil[:2]])
            failures.append("a video request was scored")
        except RuntimeError as e:
            if "415" not in str(e):
                failures.append(f"video: {e}")
            print(f"video: {str(e)[:100]!r}")
    finally:
        d.stop()
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("Flow-Factory RemoteRewardClient: OK")


if __name__ == "__main__":
    main()
