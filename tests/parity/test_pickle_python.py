"""lib/compat/pickle against CPython's pickle (the oracle), protocols 2..5.

For each payload shape the image-RL clients really send (cited in
lib/compat/imgrl.h and /work/shared/reference/image-rl-protocols.md), Python's
pickle.dumps(payload, protocol=p) is decoded by pickle-harness and compared
with the same object described here from Python: flow_grpo's DeQA / GenEval /
UnifiedReward bodies (JPEG bytes, metadata dicts, the numpy '<U' prompt array
of np.array_split), verl-omni's body, EditScore's PIL images (RGB, L, P,
RGBA, opened PNG with an iTXt chunk, opened JPEG with EXIF dpi as
IFDRational), and builtins (ints of every width, floats, bytearray, tuples,
memo sharing, strings past 255 bytes, bytes past 64 KiB). Then hostile
pickles (os.system through REDUCE, eval, subprocess, sets, persistent ids,
protocol 0/1, a numpy class called directly) must be refused naming the
opcode, with nothing run. Last, the encoder: JSON → our pickle →
pickle.loads equals json.loads.

usage: test_pickle_python.py PICKLE_HARNESS
"""
import io
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from PIL import Image, PngImagePlugin
except ImportError as e:  # pragma: no cover
    print("SKIP: needs numpy and Pillow (Debian python3-numpy, python3-pil):", e)
    sys.exit(77)

HARNESS = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="rwd-pickle-")
failures = []


def run(kind, data):
    path = os.path.join(TMP, "in")
    with open(path, "wb") as f:
        f.write(data)
    return subprocess.run([HARNESS, kind, path], capture_output=True)


def canon(o):
    if o is None:
        return None
    if isinstance(o, bool):
        return o
    if isinstance(o, int):
        return {"int": o}
    if isinstance(o, float):
        return {"float": o if math.isfinite(o) else repr(o)}
    if isinstance(o, str):
        return o
    if isinstance(o, (bytes, bytearray)):
        return {"bytes": bytes(o).hex()}
    if isinstance(o, list):
        return {"list": [canon(x) for x in o]}
    if isinstance(o, tuple):
        return {"tuple": [canon(x) for x in o]}
    if isinstance(o, dict):
        return {"dict": [[canon(k), canon(v)] for k, v in o.items()]}
    if isinstance(o, np.ndarray):
        d = {"dtype": o.dtype.str, "shape": list(o.shape), "data": np.ascontiguousarray(o).tobytes().hex()}
        if o.dtype.kind == "U" and o.ndim == 1:
            d["str"] = [str(x) for x in o]
        return {"ndarray": d}
    if isinstance(o, Image.Image):
        st = o.__getstate__()
        # the worker's .convert("RGB") runs on the unpickled image (EditScore reward_server.py)
        rgb = pickle.loads(pickle.dumps(o)).convert("RGB").tobytes().hex()
        return {"image": {"mode": st[1], "size": list(st[2]), "palette": st[3], "data": st[4].hex(), "rgb": rgb}}
    raise TypeError(type(o))


def jpeg(seed, w=24, h=16, **kw):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG", **kw)
    return buf.getvalue()


def same(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        if "float" in a and "float" in b:
            return a["float"] == b["float"]
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def check_decode(name, obj, protocols=(2, 3, 4, 5)):
    want = canon(obj)
    for p in protocols:
        r = run("load", pickle.dumps(obj, protocol=p))
        if r.returncode != 0:
            failures.append(f"{name} protocol {p}: {r.stdout.decode()[:300]}")
            continue
        got = json.loads(r.stdout)
        if not same(got, want):
            failures.append(f"{name} protocol {p}: decoded {json.dumps(got)[:300]} != {json.dumps(want)[:300]}")


# ---- the clients' payloads ----------------------------------------------

imgs = [jpeg(i) for i in range(3)]
# flow_grpo rewards.py deqa_score_remote: {"images": [JPEG bytes]}
check_decode("flow_grpo deqa", {"images": imgs})
# geneval_score: meta_datas = list(np.array_split(metadatas, k)[i]), only_strict
metas = [{"tag": "counting", "include": [{"class": "cat", "count": 2}], "prompt": "two cats"},
         {"tag": "position", "include": [{"class": "dog", "count": 1}, {"class": "cup", "count": 1,
          "position": ["left of", 0]}], "exclude": [{"class": "cat", "count": 1}], "prompt": "a dog left of a cup"}]
metas.append(metas[0])  # the same dict object twice: the memo
batched = np.array_split(metas, np.ceil(len(metas) / 64))
check_decode("flow_grpo geneval", {"images": imgs, "meta_datas": list(batched[0]), "only_strict": False})
# unifiedreward_score_remote: prompts = np.array_split(prompts, k)[i], a '<U' array
prompts = ("a cat", "a dog 🐶 on the beach", "a cat", "x" * 300)
for pb in np.array_split(prompts, 2):
    check_decode("flow_grpo unifiedreward", {"images": imgs[:len(pb)], "prompts": pb})
# NumPy >= 2 pickles the same arrays from numpy._core (the survey: reference/image-rl-protocols.md §1);
# made here by renaming the module in NumPy 1's pickles (a FRAME then overstates nothing we check)
pb = np.array_split(prompts, 2)[0]
for p, old, new in ((2, b"cnumpy.core.multiarray\n", b"cnumpy._core.multiarray\n"),
                    (4, b"\x8c\x15numpy.core.multiarray", b"\x8c\x16numpy._core.multiarray"),
                    (5, b"\x8c\x12numpy.core.numeric", b"\x8c\x13numpy._core.numeric")):
    data = pickle.dumps({"prompts": pb}, protocol=p)
    assert old in data, (p, data[:80])
    r = run("load", data.replace(old, new))
    if r.returncode or not same(json.loads(r.stdout), canon({"prompts": pb})):
        failures.append(f"numpy._core protocol {p}: {r.stdout[:200]!r}")
# verl-omni http_scorer_client: one image per request
check_decode("verl-omni", {"images": [imgs[0]], "prompts": ["a red apple"], "metadata": {}})
# deepgen_rl edit rewards: images as {"source", "edited"}
check_decode("deepgen edit", {"images": {"source": [imgs[0]], "edited": [imgs[1]]}, "prompts": ["make it red"]})

# EditScore reward_client_edit.py: PIL images, one list of sources per item
rng = np.random.default_rng(7)
rgb = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
gray = rgb.convert("L")
pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=16)
# a palette shorter than the indices used: Pillow reads the missing entries as grey
short_pal = Image.frombytes("P", (4, 2), bytes([0, 1, 2, 3, 200, 255, 7, 1]))
short_pal.putpalette([10, 20, 30, 40, 50, 60])
bilevel = rgb.convert("1")
la = rgb.convert("LA")
rgba = rgb.convert("RGBA")
png = io.BytesIO()
info = PngImagePlugin.PngInfo()
info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta/>", lang="en", tkey="xmp")
info.add_text("Software", "test")
rgb.save(png, "PNG", pnginfo=info)
opened_png = Image.open(io.BytesIO(png.getvalue()))
opened_png.load()
exif = Image.Exif()
exif[0x0112] = 1
jbuf = io.BytesIO()
rgb.save(jbuf, "JPEG", dpi=(300, 300), exif=exif.tobytes())
opened_jpeg = Image.open(io.BytesIO(jbuf.getvalue()))
opened_jpeg.load()
src = rgb.copy()
check_decode("EditScore", {
    "input_images": [[src], [src], [gray]],
    "output_image": [rgb, pal, rgba],
    "more": [short_pal, bilevel, la],
    "meta_datas": [json.dumps({"instruction": "make it red", "id": "0"})] * 3,
    "server_type": "vlm"})
check_decode("EditScore opened PNG (iTXt info)", {"output_image": [opened_png]})
check_decode("EditScore opened JPEG (IFDRational dpi)", {"output_image": [opened_jpeg]})

# builtins
shared = [1, 2]
check_decode("builtins", {
    "ints": [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31, -2**31 - 1, 2**62, -2**63, 2**63 - 1],
    "floats": [0.0, -0.0, 1.5, 1e-300, 1.7976931348623157e308, float("inf")],
    "bools": [True, False, None], "tuple": (1, (2, (3,)), ()), "empty": [[], {}, (), "", b""],
    "bytearray": bytearray(b"\x00\x01xyz"), "long_str": "é" * 200, "big_bytes": bytes(range(256)) * 300,
    "shared": [shared, shared], "nested_dict": {"a": {"b": {"c": [1.0]}}}, 3: "int key"})
check_decode("uint8 and float arrays", {"u8": np.arange(12, dtype=np.uint8).reshape(3, 4),
                                        "f4": np.linspace(0, 1, 5, dtype=np.float32),
                                        "big": np.array(["ab", "c"], dtype=">U2")})


# ---- hostile pickles -------------------------------------------------------

marker = os.path.join(TMP, "pwned")


class System:
    def __reduce__(self):
        return (os.system, ("touch " + marker,))


class Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch %s')" % marker,))


class Popen:
    def __reduce__(self):
        return (subprocess.Popen, (["touch", marker],))


def expect_refused(name, data, want):
    r = run("load", data)
    out = r.stdout.decode()
    if r.returncode != 2 or not out.startswith("ERROR") or want not in out:
        failures.append(f"{name}: expected a refusal naming {want!r}, got rc={r.returncode} {out[:200]!r}")
    if os.path.exists(marker):
        failures.append(f"{name}: the payload ran")


for p in (2, 3, 4, 5):
    expect_refused(f"os.system protocol {p}", pickle.dumps({"images": [System()]}, protocol=p), "system")
    expect_refused(f"eval protocol {p}", pickle.dumps(Eval(), protocol=p), "eval")
    expect_refused(f"Popen protocol {p}", pickle.dumps([Popen()], protocol=p), "Popen")
    expect_refused(f"set protocol {p}", pickle.dumps({1, 2}, protocol=p), "not")
for p in (0, 1):
    expect_refused(f"protocol {p}", pickle.dumps({"images": [b"x"]}, protocol=p), "protocol 2..5")
expect_refused("PERSID", b"\x80\x02Q.", "BINPERSID")
expect_refused("INST", b"\x80\x02(ios\nsystem\n.", "INST")
expect_refused("unknown opcode", b"\x80\x02\xff.", "unknown opcode")
# an allow-listed class called the wrong way: numpy.ndarray is only an argument
expect_refused("ndarray called", b"\x80\x04\x8c\x05numpy\x8c\x07ndarray\x93)R.", "ndarray")
# BUILD on a plain dict would be setattr/__setstate__ in Python
expect_refused("BUILD on dict", b"\x80\x04}}b.", "BUILD")
expect_refused("truncated", pickle.dumps({"images": imgs}, protocol=2)[:-10], "truncated")
expect_refused("short frame", pickle.dumps({"images": imgs}, protocol=4)[:-10], "a frame of")
expect_refused("trailing bytes", pickle.dumps([1], protocol=4) + b"x", "after STOP")
# self-referencing list
loop = []
loop.append(loop)
expect_refused("cycle", pickle.dumps(loop, protocol=4), "contains itself")
deep = []
for _ in range(40):
    deep = [deep]
expect_refused("depth", pickle.dumps(deep, protocol=4), "nested deeper")
expect_refused("memo index", b"\x80\x02Nr\xff\xff\xff\x7f.", "memo index")
expect_refused("huge length", b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\x00\x00.", "over the limit")


# ---- the encoder ------------------------------------------------------------

for obj in ({"outputs": [0.25, -1.5, 1e-310, 3.0]},
            {"scores": [1.0], "rewards": [0.5], "group_rewards": {"counting": [-10.0, 0.3]}, "n": 2**40, "b": True,
             "s": "é🐶" + "x" * 300, "none": None, "empty": [], "e": {}},
            [{"score": 1.0, "reward": 0.7, "reasoning": "", "meta_data": {"id": "3", "original_index": 0}}]):
    src_json = os.path.join(TMP, "j.json")
    with open(src_json, "w") as f:
        json.dump(obj, f)
    r = subprocess.run([HARNESS, "dump", src_json], capture_output=True)
    if r.returncode:
        failures.append(f"dump {obj!r:.80}: rc {r.returncode}")
        continue
    back = pickle.loads(r.stdout)
    if back != obj:
        failures.append(f"dump: pickle.loads gave {back!r:.200} for {obj!r:.200}")

if failures:
    print("FAIL:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("pickle codec matches CPython pickle for protocols 2..5; hostile pickles refused, nothing ran")
