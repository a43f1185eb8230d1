#!/usr/bin/env bash
# Product-key retrieval on queries and sub-keys made outside moe (numpy), checked against numpy's
# brute-force top-k over all N full keys: `moe bench peer --queries FILE --ids-out FILE`.
# Integer-valued inputs make every score exact in float, so ties are exact and the tie-break (lower
# id first) is checked on every row; Gaussian inputs check the rest, skipping rows whose k-th and
# (k+1)-th scores are too close for float rounding to order.
source "$(dirname "$0")/lib/common.sh"
PY=/usr/bin/python3  # Debian's python3-numpy

$PY - "$WORK" <<'PY'
import json, struct, sys
import numpy as np
w = sys.argv[1]

def save(path, tensors):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes()); off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

rng = np.random.default_rng(5)
# 3 heads, 200 tokens, key dim 8, N = 48^2 = 2304: integer values in [-2, 2] (exact ties).
save(f"{w}/int.safetensors", {"queries": rng.integers(-2, 3, (3, 200, 8)),
                              "sub_keys": rng.integers(-2, 3, (3, 2, 48, 4))})
# One head given as [T, dk] and [2, sqrt(N), dk/2]: Gaussian, N = 256^2.
save(f"{w}/gauss.safetensors", {"queries": rng.standard_normal((300, 16)),
                                "sub_keys": rng.standard_normal((2, 256, 8))})
save(f"{w}/bad.safetensors", {"queries": rng.standard_normal((30, 16)),
                              "sub_keys": rng.standard_normal((2, 64, 6))})
PY

"$MOE" bench peer --queries "$WORK/int.safetensors" --top-k 7 --no-layer --brute-tokens 8 --reps 1 \
  --ids-out "$WORK/int.json" --json | tail -n 1 >"$WORK/int.out"
"$MOE" bench peer --queries "$WORK/gauss.safetensors" --top-k 16 --no-layer --brute-tokens 8 --reps 1 \
  --ids-out "$WORK/gauss.json" --json | tail -n 1 >"$WORK/gauss.out"

$PY - "$WORK" <<'PY'
import json, struct, sys
import numpy as np
w = sys.argv[1]

def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], "<f4").reshape(v["shape"])
            for k, v in hdr.items()}

def check(name, exact):
    t = load(f"{w}/{name}.safetensors")
    q, keys = t["queries"].astype(np.float64), t["sub_keys"].astype(np.float64)
    if q.ndim == 2: q, keys = q[None], keys[None]
    got = json.load(open(f"{w}/{name}.json"))
    summary = json.load(open(f"{w}/{name}.out"))
    h, T, dk = q.shape
    ns, half = keys.shape[2], dk // 2
    ids, scores, k = np.array(got["ids"]), np.array(got["scores"]), got["top_k"]
    assert got["experts"] == ns * ns == summary["experts"] and ids.shape == (h, T, k), (got["experts"], ids.shape)
    checked = 0
    for head in range(h):
        # full key of expert i * ns + j: [K1_i, K2_j]
        full = np.concatenate([np.repeat(keys[head, 0], ns, axis=0), np.tile(keys[head, 1], (ns, 1))], axis=1)
        s = q[head] @ full.T  # [T, N]
        order = np.lexsort((np.broadcast_to(np.arange(ns * ns), s.shape), -s), axis=1)  # score desc, then id asc
        for t in range(T):
            ref = order[t, :k]
            if not exact and s[t, order[t, k - 1]] - s[t, order[t, k]] < 1e-4:
                continue
            checked += 1
            assert (ids[head, t] == ref).all(), (name, head, t, ids[head, t], ref)
            assert np.allclose(scores[head, t], s[t, ref], rtol=1e-5, atol=1e-4), (name, head, t)
    assert checked >= (h * T if exact else 0.9 * h * T), (name, checked)
    assert (ids >= k * k).mean() > 0.5, name  # global expert ids, not positions among the k^2 candidates
    print(f"{name}: {checked} of {h * T} rows equal numpy's brute force")

check("int", exact=True)
check("gauss", exact=False)
PY

# Errors: one clear line.
expect_error "sub_keys must be \[2, sqrt(N), 8\]" "$MOE" bench peer --queries "$WORK/bad.safetensors" --no-layer
expect_error "contradicts" "$MOE" bench peer --queries "$WORK/gauss.safetensors" --experts 4096 --no-layer
expect_error "must not exceed sqrt(N) = 48" "$MOE" bench peer --queries "$WORK/int.safetensors" --top-k 49 --no-layer
expect_error "needs one N" "$MOE" bench peer --no-layer --ids-out "$WORK/x.json"
expect_error "would need ~33 GiB" "$MOE" bench peer --experts 67108864 --no-layer
head -c 100 "$WORK/int.safetensors" >"$WORK/trunc.safetensors"
expect_error "safetensors" "$MOE" bench peer --queries "$WORK/trunc.safetensors" --no-layer
echo OK
