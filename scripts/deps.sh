# scripts/deps.sh — sourced by scripts/run and scripts/test: install what is
# missing (Debian packages, the pinned npm packages), quietly when nothing is.
# Idempotent: a second call does nothing and prints nothing.

# Packages to build and run rewardd.
RWD_BUILD_PKGS="meson ninja-build pkg-config gcc libopenblas-dev libdnnl-dev libjansson-dev
 libmicrohttpd-dev libpng-dev libjpeg62-turbo-dev libpcre2-dev libutf8proc-dev zlib1g-dev libsqlite3-dev
 check curl ca-certificates libpolyclipping-dev libgnutls28-dev"
# Oracles and peers used by the tests only (PyTorch, Pillow, scikit-image, NLTK,
# Node for the HF tokenizers binding, clang for fuzz targets, nginx, systemd,
# Chromium for the dashboard test through playwright-core).
RWD_TEST_PKGS="python3 python3-torch python3-numpy python3-pil python3-skimage
 python3-nltk python3-onnx python3-opencv python3-pyclipper python3-levenshtein fonts-dejavu-core python3-yaml python3-jsonschema python3-jinja2 python3-aiohttp python3-cloudpickle nodejs npm clang libclang-rt-14-dev wrk
 nginx-light systemd chromium openssl"

rwd_apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
		# NodeSource's nodejs package ships npm itself and conflicts with
		# Debian's npm package: a working npm command is enough.
		[ "$p" = npm ] && command -v npm >/dev/null && continue
		missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq >/dev/null
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# npm packages pinned in package.json, installed into node_modules/ at the root.
rwd_npm_install() {
	command -v npm >/dev/null || return 0
	[ -f package.json ] || return 0
	if [ ! -d node_modules ] || [ package.json -nt node_modules ] ||
	   { [ -f package-lock.json ] && [ package-lock.json -nt node_modules ]; }; then
		echo "installing npm packages"
		# onnxruntime-node's install script fetches a GPU add-on that is not
		# available here; the CPU library ships inside the package itself.
		npm install --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
		touch node_modules
	fi
}

# Configure (once) and build a meson build directory quietly; show errors.
rwd_build() {
	local dir="$1"; shift
	# A build dir set up earlier with other options (no -Werror, no sanitizer
	# flags) is wiped and set up again, never silently reused.
	local want="$*"
	if [ -f "$dir/build.ninja" ] && [ "$(cat "$dir/.rwd-setup-args" 2>/dev/null)" != "$want" ]; then
		echo "reconfiguring $dir (its setup options changed)"
		rm -rf "$dir"
	fi
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
		rm -f "$dir.setup.log"
		printf '%s' "$want" >"$dir/.rwd-setup-args"
	fi
	local out
	out=$(ninja -C "$dir" 2>&1) || { printf '%s\n' "$out"; return 1; }
	printf '%s\n' "$out" | grep -E 'warning:' || true
}
