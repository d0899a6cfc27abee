"""HTTP client for rewardd, on the standard library (aiohttp for AsyncClient).

A failure is never turned into a reward: every error raises RewarddError (or
an item's result carries its own "error"). Retries happen only where
retrying is safe and useful: connection errors, 429 (queue full) and 503 (not
ready / draining), with exponential backoff, full jitter and the server's
Retry-After honoured. Scoring is idempotent, so a retried request cannot
double-count anything.
"""
import http.client
import json
import random
import socket
import threading
import time
import urllib.parse

RETRY_STATUSES = (429, 503)


class RewarddError(Exception):
    """An HTTP error from rewardd, or a transport failure after the retries.

    status: the HTTP status (0 for a transport failure); code, message, field:
    from the server's {"error": {...}} body when there is one.
    """

    def __init__(self, status, code, message, field=None, body=None):
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status, self.code, self.message, self.field, self.body = status, code, message, field, body


class ItemError(RewarddError):
    """One item of a request failed; raised by Client.scores()."""


def _backoff(attempt, base, cap, retry_after):
    if retry_after is not None:
        return min(cap, retry_after)
    return random.uniform(0, min(cap, base * (2 ** attempt)))  # full jitter


def _retry_after(headers):
    v = headers.get("Retry-After") if headers else None
    try:
        return max(0.0, float(v)) if v is not None else None
    except ValueError:
        return None


def _raise_for(status, raw):
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    err = body.get("error", {}) if isinstance(body, dict) else {}
    if not isinstance(err, dict):
        err = {}
    raise RewarddError(status, err.get("code", "http_%d" % status),
                       err.get("message", raw[:200].decode("utf-8", "replace") if raw else ""),
                       err.get("field"), body)


class Client:
    """A synchronous rewardd client. Thread-safe: one keep-alive connection per thread.

    Client("http://127.0.0.1:8080", api_key=None, timeout=120, retries=5)
    """

    def __init__(self, base_url="http://127.0.0.1:8080", api_key=None, timeout=120.0,
                 retries=5, backoff=0.25, max_backoff=10.0):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https"):
            raise ValueError("base_url must be http:// or https://")
        self._https = u.scheme == "https"
        self._host, self._port = u.hostname, u.port or (443 if self._https else 80)
        self._prefix = u.path.rstrip("/")
        self.api_key, self.timeout = api_key, timeout
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self._local = threading.local()

    # Picklable (verl's reward_manager=remote ships compute_score to Ray actors):
    # the per-thread connections stay behind and the copy opens its own.
    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_local"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    # -- transport ---------------------------------------------------------
    def _conn(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            c = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = c
        return c

    def _drop_conn(self):
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def close(self):
        self._drop_conn()

    def request(self, method, path, body=None):
        """Send a request and return the decoded JSON (or text for non-JSON).

        A NaN or infinity in the body raises ValueError here: JSON has no such
        numbers, and sending one would only get a 400 back.
        """
        data = json.dumps(body, allow_nan=False).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        last = None
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                c = self._conn()
                c.request(method, self._prefix + path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self._drop_conn()
                if 200 <= r.status < 300:
                    ctype = r.getheader("Content-Type", "")
                    return json.loads(raw) if "json" in ctype else raw.decode()
                if r.status not in RETRY_STATUSES:
                    _raise_for(r.status, raw)
                retry_after = _retry_after(r.headers)  # the HTTPMessage (HTTPResponse has no .get)
                try:
                    _raise_for(r.status, raw)
                except RewarddError as e:
                    last = e
            except (ConnectionError, socket.timeout, http.client.HTTPException, OSError) as e:
                self._drop_conn()
                last = RewarddError(0, "connection_error", str(e) or type(e).__name__)
            if attempt < self.retries:
                time.sleep(_backoff(attempt, self.backoff, self.max_backoff, retry_after))
        raise last

    # -- API ---------------------------------------------------------------
    def rewards(self, items, model=None, dimensions=None, timeout_ms=None, priority=None, **extra):
        """POST /v1/rewards; returns the whole response dict."""
        body = {"items": list(items)}
        if model is not None:
            body["model"] = model
        if dimensions is not None:
            body["dimensions"] = list(dimensions)
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        if priority is not None:
            body["priority"] = priority
        body.update(extra)
        return self.request("POST", "/v1/rewards", body)

    def scores(self, items, **kw):
        """Per-item result dicts ({"reward", "scores", …}); raises ItemError for a failed item."""
        out = self.rewards(items, **kw)
        for i, r in enumerate(out["results"]):
            if "error" in r:
                e = r["error"]
                raise ItemError(200, e.get("code", "item_error"),
                                "item %d: %s" % (i, e.get("message", "")), e.get("field"), r)
        return out["results"]

    def get_reward(self, query, prompts=None, labels=None):
        """OpenRLHF's POST /get_reward."""
        body = {"query": list(query)}
        if prompts is not None:
            body["prompts"] = list(prompts)
        if labels is not None:
            body["labels"] = list(labels)
        return self.request("POST", "/get_reward", body)

    def models(self):
        return self.request("GET", "/v1/models")

    def model(self, name):
        return self.request("GET", "/v1/models/" + urllib.parse.quote(name, safe=""))

    def stats(self):
        return self.request("GET", "/v1/stats")

    def healthy(self):
        try:
            self.request("GET", "/healthz")
            return True
        except RewarddError:
            return False

    def ready(self):
        """True when /readyz answers 200 (one try, no retries)."""
        saved, self.retries = self.retries, 0
        try:
            self.request("GET", "/readyz")
            return True
        except RewarddError:
            return False
        finally:
            self.retries = saved


try:
    import asyncio

    import aiohttp
except ImportError:  # aiohttp is optional
    aiohttp = None


class AsyncClient:
    """The asyncio twin of Client (needs aiohttp); one pooled session."""

    def __init__(self, base_url="http://127.0.0.1:8080", api_key=None, timeout=120.0,
                 retries=5, backoff=0.25, max_backoff=10.0):
        if aiohttp is None:
            raise RuntimeError("AsyncClient needs aiohttp (pip install aiohttp / apt install python3-aiohttp)")
        self.base_url = base_url.rstrip("/")
        self.api_key, self.timeout = api_key, timeout
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self._session = None
        self._loop = None

    async def _sess(self):
        # A session belongs to the event loop it was opened on: a call from another
        # loop (a second trainer in the process, a fresh asyncio.run) opens its own.
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._loop = loop
        return self._session

    async def close(self):
        if self._session is not None:
            await self._session.close()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_session"] = state["_loop"] = None  # a session belongs to one event loop; the copy opens its own
        return state

    async def request(self, method, path, body=None):
        headers = {"Accept": "application/json"}
        data = json.dumps(body, allow_nan=False).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        last = None
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                s = await self._sess()
                async with s.request(method, self.base_url + path, data=data, headers=headers) as r:
                    raw = await r.read()
                    if 200 <= r.status < 300:
                        return json.loads(raw) if "json" in r.headers.get("Content-Type", "") else raw.decode()
                    if r.status not in RETRY_STATUSES:
                        _raise_for(r.status, raw)
                    retry_after = _retry_after(r.headers)
                    try:
                        _raise_for(r.status, raw)
                    except RewarddError as e:
                        last = e
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
                last = RewarddError(0, "connection_error", str(e) or type(e).__name__)
            if attempt < self.retries:
                await asyncio.sleep(_backoff(attempt, self.backoff, self.max_backoff, retry_after))
        raise last

    async def rewards(self, items, model=None, dimensions=None, **extra):
        body = {"items": list(items)}
        if model is not None:
            body["model"] = model
        if dimensions is not None:
            body["dimensions"] = list(dimensions)
        body.update(extra)
        return await self.request("POST", "/v1/rewards", body)

    async def scores(self, items, **kw):
        """Per-item result dicts; raises ItemError for a failed item (as Client.scores)."""
        out = await self.rewards(items, **kw)
        for i, r in enumerate(out["results"]):
            if "error" in r:
                e = r["error"]
                raise ItemError(200, e.get("code", "item_error"),
                                "item %d: %s" % (i, e.get("message", "")), e.get("field"), r)
        return out["results"]

    async def model(self, name):
        return await self.request("GET", "/v1/models/" + urllib.parse.quote(name, safe=""))

    async def get_reward(self, query, prompts=None, labels=None):
        body = {"query": list(query)}
        if prompts is not None:
            body["prompts"] = list(prompts)
        if labels is not None:
            body["labels"] = list(labels)
        return await self.request("POST", "/get_reward", body)
