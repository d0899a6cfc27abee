"""deploy/k8s and deploy/grafana against the built daemon's real behaviour.

The manifests are parsed (python3-yaml) and every number or name that must
agree with rewardd is compared with what the daemon itself reports, not with
typed-in values:
- `rewardd --check-config` of the ConfigMap's config.json gives the listen
  port, the drain bound and the compute settings;
- that config is served by a live daemon (only the address moved to a free
  loopback port); its probe paths are requested and its /metrics scraped
  after some traffic, giving the metric names and labels that exist.

Checked: container port / Service targetPort / ServiceMonitor port; probe
paths (liveness /healthz, readiness and startup /readyz) answer 200 on the
live daemon; terminationGracePeriodSeconds covers preStop sleep + drain
bound + reply time; --config names the mounted ConfigMap key; selectors
match the pod labels; the HPA's Pods metric and the Prometheus adapter rule
name a metric the daemon exposes; every metric, label and label_values()
the Grafana dashboard queries exists in the scrape (per-dimension reward
histograms, announced but not yet exposed, are reported as pending).

Usage: test_k8s_manifests.py REWARDD_EXE
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwd_harness as H  # noqa: E402
import yaml  # noqa: E402  (the harness skips when it is missing)

EXE = sys.argv[1]
K8S = os.path.join(H.SRC, "deploy", "k8s")
DASH = os.path.join(H.SRC, "deploy", "grafana", "rewardd.json")
C = H.Checker("test_k8s_manifests")
# labels Prometheus adds at scrape time (target labels), not the daemon
TARGET_LABELS = {"instance", "job", "pod", "namespace", "service", "container", "endpoint"}


def load_manifests():
    docs = {}
    for fn in sorted(os.listdir(K8S)):
        if not fn.endswith(".yaml"):
            continue
        with open(os.path.join(K8S, fn)) as f:
            for d in yaml.safe_load_all(f):
                if d and "kind" in d:
                    docs.setdefault(d["kind"], []).append((fn, d))
    return docs


def one(docs, kind):
    C.check(len(docs.get(kind, [])) == 1, "exactly one %s" % kind)
    return docs[kind][0][1]


def scrape_families(text):
    """{series name: set(label names)} and the # TYPE of each family."""
    series, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(None, 3)
            types[name] = typ
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', line[len(name):].split("} ")[0]))
            series.setdefault(name, set()).update(labels)
    return series, types


def traffic(d):
    """A few scoring requests so every per-model series has samples."""
    png = None
    try:
        import io
        from PIL import Image
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (120, 30, 200)).save(buf, "PNG")
        import base64
        png = base64.b64encode(buf.getvalue()).decode()
    except ImportError:
        pass
    for i in range(5):
        r = d.request("POST", "/v1/rewards", {"model": "rules", "items": [
            {"id": str(i), "response": "<think>x</think><answer>%d</answer>" % i, "label": str(i)}]})
        C.check(r.status == 200, "rules request answered")
    if png:
        r = d.request("POST", "/v1/rewards", {"model": "image_metrics", "items": [{"image": png}]})
        C.check(r.status == 200, "image_metrics request answered (%d)" % r.status)


def check_k8s(docs, eff, d, series):
    cm, dep, svc = one(docs, "ConfigMap"), one(docs, "Deployment"), one(docs, "Service")
    hpa, pdb, sm = one(docs, "HorizontalPodAutoscaler"), one(docs, "PodDisruptionBudget"), one(docs, "ServiceMonitor")
    C.check(hpa["apiVersion"] == "autoscaling/v2", "HPA is autoscaling/v2")
    C.check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor is monitoring.coreos.com/v1")
    C.check(pdb["apiVersion"] == "policy/v1", "PDB is policy/v1")
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    (ctr,) = spec["containers"]
    host, port = eff["listen"].rsplit(":", 1)
    port = int(port)
    C.check(host in ("0.0.0.0", "[::]"), "the pod's rewardd listens on every address (%s)" % eff["listen"])
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    C.check(ports.get("http") == port, "containerPort http %s == the daemon's listen port %d" % (ports.get("http"), port))

    # probes: the paths answer 200 on the live daemon (ready, not draining)
    want = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/readyz"}
    for probe, path in want.items():
        g = ctr[probe]["httpGet"]
        C.check(g["path"] == path and g["port"] in ("http", port), "%s: GET %s on the http port" % (probe, path))
        r = d.request("GET", g["path"])
        C.check(r.status == 200, "%s path %s answers 200 on the live daemon (%d)" % (probe, g["path"], r.status))
    st = ctr["startupProbe"]
    C.check(st["periodSeconds"] * st["failureThreshold"] >= 300, "the startup probe allows >= 5 min to load models")

    # termination: preStop sleep, then SIGTERM -> drain bound -> <= 2 s for replies -> exit
    pre = ctr["lifecycle"]["preStop"]
    if "sleep" in pre:
        sleep_s = pre["sleep"]["seconds"]
    else:
        sleep_s = int(pre["exec"]["command"][-1])
    drain_s = eff["shutdown"]["drain_timeout_ms"] / 1000.0
    tg = spec["terminationGracePeriodSeconds"]
    need = sleep_s + drain_s + 2
    C.check(need + 3 <= tg <= need + 60, "terminationGracePeriodSeconds %d covers preStop %ds + drain %.0fs + 2s "
            "with a margin" % (tg, sleep_s, drain_s))
    print("termination: preStop %ds + drain bound %.0fs (rewardd --check-config) + 2s => grace %ds" % (
        sleep_s, drain_s, tg))

    # the config the pod reads is the ConfigMap's
    args = ctr["args"]
    cfg_path = args[args.index("--config") + 1]
    mounts = {v["name"]: v for v in ctr["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    ok = any("configMap" in vols[n] and vols[n]["configMap"]["name"] == cm["metadata"]["name"] and
             cfg_path == m["mountPath"].rstrip("/") + "/" + "config.json" for n, m in mounts.items() if n in vols)
    C.check(ok and "config.json" in cm["data"], "--config %s is the mounted ConfigMap key" % cfg_path)

    res = ctr["resources"]
    C.check(all(k in res.get("requests", {}) for k in ("cpu", "memory")), "resource requests set")
    cpu = float(str(res["limits"]["cpu"]).rstrip("m")) / (1000 if str(res["limits"]["cpu"]).endswith("m") else 1)
    bt = eff["compute"]["blas_threads"]
    C.check(1 <= bt <= cpu, "compute.blas_threads %d set and within the CPU limit %g" % (bt, cpu))

    # selectors
    def sel_ok(sel):
        return all(labels.get(k) == v for k, v in sel.items())
    C.check(sel_ok(dep["spec"]["selector"]["matchLabels"]), "Deployment selector matches its pods")
    C.check(sel_ok(svc["spec"]["selector"]), "Service selector matches the pods")
    C.check(sel_ok(pdb["spec"]["selector"]["matchLabels"]), "PDB selector matches the pods")
    C.check(all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
            "ServiceMonitor selects the Service")
    (sp,) = svc["spec"]["ports"]
    C.check(sp["targetPort"] in ("http", port), "Service targets the http port")
    (ep,) = sm["spec"]["endpoints"]
    C.check(ep["port"] == sp["name"], "ServiceMonitor scrapes the Service's port by name")
    r = d.request("GET", ep["path"])
    C.check(r.status == 200 and r.header("Content-Type").startswith("text/plain"),
            "ServiceMonitor path %s serves Prometheus text" % ep["path"])
    ref = hpa["spec"]["scaleTargetRef"]
    C.check(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"], "HPA scales the Deployment")

    # HPA metric -> adapter rule -> a metric the daemon exposes
    (m,) = hpa["spec"]["metrics"]
    C.check(m["type"] == "Pods", "HPA uses a Pods metric")
    name = m["pods"]["metric"]["name"]
    C.check(name in series, "HPA metric %s is exposed by rewardd" % name)
    with open(os.path.join(K8S, "prometheus-adapter-rules.yaml")) as f:
        rules = yaml.safe_load(f)["rules"]["custom"]
    served = {}
    for rule in rules:
        src = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["seriesQuery"]).group(0)
        C.check(src in series, "adapter rule's series %s is exposed by rewardd" % src)
        served[rule["name"]["as"]] = src
    C.check(name in served, "the Prometheus adapter serves %s to the HPA" % name)
    print("HPA: Pods metric %s (adapter from %s), target %s per pod" % (
        name, served.get(name), m["pods"]["target"].get("averageValue")))
    with open(os.path.join(K8S, "kustomization.yaml")) as f:
        kres = set(yaml.safe_load(f)["resources"])
    objs = {fn for kind, lst in docs.items() for fn, _ in lst if kind != "Kustomization"}
    C.check(kres == objs, "kustomization.yaml lists every manifest (%s)" % sorted(objs ^ kres))


def promql_metrics(expr):
    """(metric names, __name__ regexes, {metric: matcher labels}, by-labels) used by a PromQL expression."""
    regexes = re.findall(r'__name__=~"([^"]+)"', expr)
    e = re.sub(r'"[^"]*"', '""', expr)  # drop string contents (label values, regexes)
    names = set(re.findall(r"\b(rewardd_[a-zA-Z0-9_]+)\b", e))
    matchers = {}
    for n, body in re.findall(r"\b(rewardd_[a-zA-Z0-9_]+)\{([^}]*)\}", e):
        matchers.setdefault(n, set()).update(re.findall(r"([a-zA-Z_]\w*)\s*[=!]~?", body))
    by = set()
    for grp in re.findall(r"\bby\s*\(([^)]*)\)", e):
        by.update(x.strip() for x in grp.split(",") if x.strip())
    return names, regexes, matchers, by


def check_dashboard(series, types):
    with open(DASH) as f:
        dash = json.load(f)
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets") or []:
                exprs.append((p["title"], t["expr"]))
            walk(p.get("panels", []))
    walk(dash["panels"])
    C.check(len(exprs) >= 10, "the dashboard has queries (%d)" % len(exprs))
    used, pending = set(), []
    for title, expr in exprs:
        names, regexes, matchers, by = promql_metrics(expr)
        for n in names:
            used.add(n)
            C.check(n in series, "%s: %s is exposed by rewardd" % (title, n))
        for rx in regexes:
            hits = [s for s in series if re.fullmatch(rx, s)]
            if hits:
                names = names | set(hits)
                used.update(hits)
            else:
                pending.append((title, rx))
        have = set().union(*(series.get(n, set()) for n in names)) if names else set()
        for n, ls in matchers.items():
            for lab in ls - TARGET_LABELS:
                C.check(lab in series.get(n, set()), "%s: %s has label %s" % (title, n, lab))
        if names:
            for lab in by - TARGET_LABELS - {"le"}:
                C.check(lab in have, "%s: 'by (%s)' is a label of %s" % (title, lab, sorted(names)))
        if "histogram_quantile" in expr:
            for n in names:
                C.check(n.endswith("_bucket") and types.get(n[:-7]) == "histogram",
                        "%s: histogram_quantile over a histogram's _bucket (%s)" % (title, n))
    for v in dash["templating"]["list"]:
        q = v.get("definition", "")
        m = re.match(r"label_values\((\w+),\s*(\w+)\)", q)
        if m:
            C.check(m.group(1) in series and (m.group(2) in series[m.group(1)] or m.group(2) in TARGET_LABELS),
                    "variable %s: %s" % (v["name"], q))
    print("grafana: %d queries over %d rewardd series names, all exposed by the daemon" % (len(exprs), len(used)))
    for title, rx in pending:
        print("grafana: PENDING '%s' queries %s, which the daemon does not expose yet "
              "(per-dimension reward histograms, announced in daemon/api_rl.h)" % (title, rx))


def main():
    docs = load_manifests()
    cm = one(docs, "ConfigMap")
    cfg = json.loads(cm["data"]["config.json"])
    p = os.path.join(H.mkdtemp("rwd-k8s-"), "config.json")
    with open(p, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run([EXE, "--config", p, "--check-config"], capture_output=True, text=True, timeout=60)
    C.check(r.returncode == 0, "rewardd --check-config accepts the ConfigMap's config: " + r.stderr[-300:])
    eff = json.loads(r.stdout)
    print("daemon (--check-config of the ConfigMap): listen %s, drain %d ms, blas_threads %d" % (
        eff["listen"], eff["shutdown"]["drain_timeout_ms"], eff["compute"]["blas_threads"]))
    d = H.Daemon(EXE, cfg)  # the same config, served on a free loopback port
    try:
        traffic(d)
        raw = d.request("GET", "/metrics").raw.decode()
        series, types = scrape_families(raw)
        check_k8s(docs, eff, d, series)
        check_dashboard(series, types)
    finally:
        d.stop()
    C.done()


main()
