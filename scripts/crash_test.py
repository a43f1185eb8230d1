#!/usr/bin/python3
"""Crash safety, tested by killing: `moe train` (saving every step) is SIGKILLed KILLS times at
random moments, half of them the moment a checkpoint file is being written (a temporary file of the
atomic writer appears), the others after a random delay. After every kill:
  - the directory loads (`moe info`) and records a step S (once a first checkpoint exists);
  - `moe eval` gives exactly the loss of a fresh run stopped at step S (the checkpoint at S was
    fully written, not a mix of two steps);
  - `--resume` continues from S: its step S+1 has exactly the loss of an uninterrupted run;
  - no temporary file outlives the next start.
Then training resumes in the background and is killed again (and starts over with --overwrite
once past step 300, so that the fresh runs stay short).
Usage: scripts/crash_test.py MOE_BINARY WORKDIR [KILLS]   (prints one line per kill and a summary;
exit 1 on the first failure)."""
import json
import os
import random
import signal
import subprocess
import sys
import time

MOE, WORK = sys.argv[1], sys.argv[2]
KILLS = int(sys.argv[3]) if len(sys.argv) > 3 else 100
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = os.path.join(SRC, "tests/cli/data/tiny-moe.json")
STEPS = 100000  # the schedule's length: never reached
RESTART_AFTER = 300  # steps after which the run starts over in the same directory (--overwrite)
os.makedirs(WORK, exist_ok=True)
TEXT = os.path.join(WORK, "text.txt")
rng = random.Random(int(os.environ.get("SEED", "1")))
words = "the quick brown fox jumps over a lazy dog der schnelle braune Fuchs el zorro".split()
with open(TEXT, "w") as f:
    for _ in range(600):
        f.write(" ".join(rng.choice(words) for _ in range(8)) + ".\n")
COMMON = ["--data", TEXT, "--batch-size", "8", "--context", "32", "--eval-every", "0", "--threads", "1",
          "--seed", "3", "--steps", str(STEPS)]


def run(args, **kw):
    return subprocess.run([MOE] + args, capture_output=True, text=True, **kw)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def eval_loss(d):
    r = run(["eval", "--model", d, "--data", TEXT, "--context", "32", "--json"])
    if r.returncode != 0:
        fail(f"eval of {d}: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])["loss"]


def losses(d):
    return {j["step"]: j["loss"] for j in (json.loads(l) for l in open(os.path.join(d, "metrics.jsonl")))}


# Reference: the uninterrupted run's per-step losses (its first 1000 steps).
ref_dir = os.path.join(WORK, "reference")
r = run(["train", "--model-config", CONF] + COMMON + ["--stop-after", "1000", "--save-every", "0",
        "--out", ref_dir, "--overwrite"])
if r.returncode != 0:
    fail("reference run: " + r.stderr)
ref = losses(ref_dir)

out = os.path.join(WORK, "run")
first = True
stats = {"during_save": 0, "random": 0, "no_checkpoint_yet": 0}
last_step = 0
for kill in range(1, KILLS + 1):
    args = (["train", "--model-config", CONF, "--overwrite"] if first else ["train", "--resume"]) + COMMON + [
        "--save-every", "1", "--out", out]
    p = subprocess.Popen([MOE] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    during_save = rng.random() < 0.5
    deadline = time.time() + rng.uniform(0.2, 1.5)
    while time.time() < deadline and p.poll() is None:
        if during_save and os.path.isdir(out) and any(".tmp." in n for n in os.listdir(out)):
            break
        time.sleep(0.0005 if during_save else 0.01)
    if p.poll() is not None:
        fail(f"kill {kill}: the trainer ended by itself: {p.stderr.read().decode()}")
    saving = any(".tmp." in n for n in os.listdir(out)) if os.path.isdir(out) else False
    p.send_signal(signal.SIGKILL)
    p.wait()
    stats["during_save" if saving else "random"] += 1
    info = run(["info", "--model", out, "--json"])
    if info.returncode != 0:
        if first and not os.path.exists(os.path.join(out, "config.json")):
            stats["no_checkpoint_yet"] += 1
            print(f"kill {kill}: before the first checkpoint", flush=True)
            continue  # nothing was saved yet: start over
        fail(f"kill {kill}: the directory does not load: {info.stderr.strip()}")
    first = False
    step = json.loads(info.stdout.strip().splitlines()[-1])["step"]
    if step < last_step:
        fail(f"kill {kill}: the directory went back from step {last_step} to {step}")
    if step + 1 not in ref:
        print(f"stopping: step {step} is past the reference run", flush=True)
        break
    # The checkpoint is the one a fresh run stopped at that step writes.
    loss = eval_loss(out)
    fresh = os.path.join(WORK, "fresh")
    r = run(["train", "--model-config", CONF] + COMMON + ["--stop-after", str(step), "--save-every", "0",
            "--out", fresh, "--overwrite"])
    if r.returncode != 0:
        fail("fresh run: " + r.stderr)
    want = eval_loss(fresh)
    if loss != want:
        fail(f"kill {kill}: eval of the killed directory at step {step} gives {loss!r}, a fresh run to that step {want!r}")
    # Resume one step: the uninterrupted run's loss, and no temporary file left.
    r = run(["train", "--resume"] + COMMON + ["--stop-after", str(step + 1), "--save-every", "1", "--out", out])
    if r.returncode != 0:
        fail(f"kill {kill}: --resume: {r.stderr.strip()}")
    got = losses(out)
    if got.get(step + 1) != ref[step + 1] or sorted(got) != list(range(1, step + 2)):
        fail(f"kill {kill}: resumed step {step + 1} loss {got.get(step + 1)!r}, uninterrupted {ref[step + 1]!r}; "
             f"steps logged {sorted(got)[:3]}..{sorted(got)[-3:]}")
    left = [n for n in os.listdir(out) if ".tmp." in n]
    if left:
        fail(f"kill {kill}: temporary files left after --resume: {left}")
    last_step = step + 1
    if last_step >= RESTART_AFTER:  # start over, so that the fresh reference runs stay short
        first, last_step = True, 0
    print(f"kill {kill}: {'during a save' if saving else 'at a random moment'}; step {step} loads, eval {loss:.6f} "
          f"= fresh run; resumed step {step + 1} = uninterrupted", flush=True)
print(f"crash test: {KILLS} kills ({stats['during_save']} during a save, {stats['random']} elsewhere, "
      f"{stats['no_checkpoint_yet']} of them before the first checkpoint): every other directory loaded, evaluated to the "
      f"fully written step and resumed with the uninterrupted run's losses", flush=True)
