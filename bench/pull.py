#!/usr/bin/env python3
"""The pull phase's helpers for bench/run.sh (via lib.py). Standard library only.

Subcommands (through lib.py):
  gen-pull-image OUTDIR SRCROOT   5-layer gzip OCI layout (tag v1), >= 400 MB of gzip
  layer-manifest DIR              one line per entry of an extracted layer, whiteouts and
                                  opaque dirs in one form whether they are `.wh.` files (tar)
                                  or char 0:0 devices / trusted.overlay.opaque (a store)
  time-fields FILE                "<user s> <sys s> <max RSS KiB>" from `/usr/bin/time -v -o FILE`
The report section (`report_lines`) is called by lib.py's report.
"""
import hashlib
import json
import os
import shutil
import stat
import statistics

from lib import log, sh, sha256_file

MiB = 1 << 20
RANDOM_FILES = 6          # incompressible files of 16 MiB in layer 4
MIN_GZ = 400 * 1000 * 1000


def _copy_trees(stage, src, subs):
    for s in subs:
        dst = os.path.join(stage, "usr", s)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        sh("cp -a %s %s" % (os.path.join(src, s), dst))


def _random_layer(stage):
    d = os.path.join(stage, "opt", "bench", "random")
    os.makedirs(d)
    for i in range(RANDOM_FILES):
        with open(os.path.join(d, "r%02d.bin" % i), "wb") as f:
            for _ in range(16):
                f.write(os.urandom(MiB))


def _touch(p, text=""):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)


def _change_layer(stage, below):
    """layer 5: whiteouts of every 50th file of layer 1, a changed file next to each, an
    opaque dir over layer 2, a whiteout of a whole dir of layer 3, one of layer 4's random
    files deleted and one replaced."""
    l1 = below[0]
    n = 0
    for dp, dns, fns in os.walk(l1):
        dns.sort()
        for fn in sorted(fns):
            n += 1
            p = os.path.join(dp, fn)
            rel = os.path.relpath(p, l1)
            if n % 50 == 0:
                _touch(os.path.join(stage, os.path.dirname(rel), ".wh." + fn))
            elif n % 50 == 1 and os.path.isfile(p) and not os.path.islink(p):
                _touch(os.path.join(stage, rel), "changed in layer 5\n")
    opq = os.path.join(stage, "usr", "share", "locale", "de")
    _touch(os.path.join(opq, ".wh..wh..opq"))
    _touch(os.path.join(opq, "new-in-l5"), "opaque dir content\n")
    if os.path.isdir(os.path.join(below[2], "usr", "sbin")):  # a whole dir of layer 3
        _touch(os.path.join(stage, "usr", ".wh.sbin"))
    rnd = os.path.join(stage, "opt", "bench", "random")
    _touch(os.path.join(rnd, ".wh.r00.bin"))
    with open(os.path.join(rnd, "r01.bin"), "wb") as f:
        f.write(os.urandom(MiB))


def _pack(out, name, stage, comp, blobs):
    tarp = os.path.join(out, name + ".tar")
    tops = sorted(os.listdir(stage))
    sh("tar -C %s --sort=name --numeric-owner -cf %s %s" % (stage, tarp, " ".join(tops)))
    diff = sha256_file(tarp)
    tmp = os.path.join(out, name + ".tar.gz.tmp")
    sh("%s < %s > %s" % (comp, tarp, tmp))
    os.unlink(tarp)
    blob = sha256_file(tmp)
    size = os.path.getsize(tmp)
    os.rename(tmp, os.path.join(blobs, blob))
    log("layer %s: %.1f MB gzip, blob %s diff %s" % (name, size / 1e6, blob[:12], diff[:12]))
    return blob, diff, size


def _write_json(path, obj):
    b = json.dumps(obj, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(b)
    return b


def cmd_gen_pull_image(out, src):
    os.makedirs(out, exist_ok=True)
    blobs = os.path.join(out, "oci", "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    comp = "pigz -p 2 -6" if shutil.which("pigz") else "gzip -6"
    stages = [os.path.join(out, "stage", "l%d" % i) for i in range(1, 6)]
    _copy_trees(stages[0], src, ["lib/x86_64-linux-gnu"])
    _copy_trees(stages[1], src, ["share/doc", "share/locale", "share/man"])
    _copy_trees(stages[2], src, ["bin", "sbin"])
    _random_layer(stages[3])
    _change_layer(stages[4], stages[:4])
    layers = [_pack(out, "l%d" % (i + 1), st, comp, blobs) for i, st in enumerate(stages)]
    sh("rm -rf %s" % os.path.join(out, "stage"))
    cfg = {
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + l[1] for l in layers]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "layerfs pull bench layer %d" % i}
                    for i in range(1, len(layers) + 1)],
    }
    cb = json.dumps(cfg, separators=(",", ":")).encode()
    chex = hashlib.sha256(cb).hexdigest()
    _write_json(os.path.join(blobs, chex), cfg)
    man = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + chex, "size": len(cb)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + l[0], "size": l[2]} for l in layers],
    }
    mb = json.dumps(man, separators=(",", ":")).encode()
    mhex = hashlib.sha256(mb).hexdigest()
    _write_json(os.path.join(blobs, mhex), man)
    idx = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + mhex,
        "size": len(mb), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}
    _write_json(os.path.join(out, "oci", "index.json"), idx)
    _write_json(os.path.join(out, "oci", "oci-layout"), {"imageLayoutVersion": "1.0.0"})
    info = {"image_id": "sha256:" + chex, "manifest_digest": "sha256:" + mhex,
            "layers": [{"blob": l[0], "diff_id": l[1], "gz_bytes": l[2]} for l in layers],
            "gz_total": sum(l[2] for l in layers)}
    with open(os.path.join(out, "image.json"), "w") as f:
        json.dump(info, f, indent=1)
    log("pull image %s: %.1f MB in %d gzip layers" % (chex[:12], info["gz_total"] / 1e6, len(layers)))
    if info["gz_total"] < MIN_GZ:
        log("WARNING: only %.0f MB of gzip (wanted >= %.0f MB): %s is small" %
            (info["gz_total"] / 1e6, MIN_GZ / 1e6, src))


# ------------------------------------------------------------------ correctness
def _opaque(p):
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(p, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _entry(root, rel, st, links):
    p = os.path.join(root, rel)
    m = st.st_mode
    if stat.S_ISCHR(m) and st.st_rdev == 0:
        return "%s\twhiteout" % rel
    common = "%o\t%d\t%d" % (stat.S_IMODE(m), st.st_uid, st.st_gid)
    if stat.S_ISDIR(m):
        return "%s\td\t%s" % (rel, common)
    if stat.S_ISLNK(m):
        return "%s\tl\t%s\t%s\t%d" % (rel, common, os.readlink(p), int(st.st_mtime))
    if stat.S_ISREG(m):
        link = "-"
        if st.st_nlink > 1:   # hard links: every name of one inode points at the first name
            link = links.setdefault((st.st_dev, st.st_ino), rel)
        return "%s\tf\t%s\t%d\t%d\t%s\t%s" % (rel, common, st.st_size, int(st.st_mtime), link,
                                              sha256_file(p))
    return "%s\to\t%s\t%x" % (rel, common, st.st_rdev)


def cmd_layer_manifest(root):
    lines = []
    links = {}
    for dp, dns, fns in os.walk(root):
        dns.sort()
        rd = os.path.relpath(dp, root)
        rd = "" if rd == "." else rd
        if _opaque(dp):
            lines.append("%s\topaque" % (rd or "."))
        for n in sorted(dns + fns):
            rel = os.path.join(rd, n)
            if n == ".wh..wh..opq":
                lines.append("%s\topaque" % (rd or "."))
            elif n.startswith(".wh."):
                lines.append("%s\twhiteout" % os.path.join(rd, n[4:]))
            else:
                lines.append(_entry(root, rel, os.lstat(os.path.join(root, rel)), links))
    for line in sorted(lines):
        print(line)


def cmd_time_fields(path):
    want = {"User time (seconds)": "0", "System time (seconds)": "0",
            "Maximum resident set size (kbytes)": "0"}
    try:
        for line in open(path):
            k, _, v = line.strip().rpartition(": ")
            if k in want:
                want[k] = v.strip()
    except OSError:
        pass
    print(" ".join(want.values()))


# ------------------------------------------------------------------ report
def _load(outdir):
    """pmem rows: impl workload rep user_s sys_s maxrss_kib registry_cpu_s"""
    rows = []
    p = os.path.join(outdir, "extra.tsv")
    if os.path.exists(p):
        for line in open(p):
            f = line.rstrip("\n").split("\t")
            if f[0] == "pmem" and len(f) >= 8:
                rows.append({"impl": f[1], "workload": f[2], "user": float(f[4]), "sys": float(f[5]),
                             "rss": float(f[6]), "reg": float(f[7]) if f[7] not in ("", "-") else None})
    return rows


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def report_lines(outdir, med, wls, bad, checks, fmt_s):
    pwl = [w for w in wls if w.startswith("pull-")]
    if not pwl:
        return []
    res = _load(outdir)
    L = ["", "## Pull from a registry: median seconds (ratio vs the curl|pigz|tar floor)", "",
         "| workload | floor | layerfs | podman | layerfs vs floor (target <=1.3) | "
         "podman / layerfs (target >=1.5) | layerfs peak RSS (target <100 MiB) | check |",
         "|---|---|---|---|---|---|---|---|"]
    for w in pwl:
        per = med[w]
        fl = per.get("floor")
        cells = [w]
        for im in ("floor", "layerfs", "podman"):
            m = per.get(im)
            if not m or m[0] is None:
                cells.append("**FAIL**" if (w, im) in bad else "-")
                continue
            c = fmt_s(m[0])
            if im != "floor" and fl and fl[0]:
                c += " (%.2fx)" % (m[0] / fl[0])
            if (w, im) in bad:
                c += " **FAIL**"
            cells.append(c)
        lf, pd = per.get("layerfs"), per.get("podman")
        if lf and lf[0] and fl and fl[0]:
            r = lf[0] / fl[0]
            cells.append("%.2f (%s)" % (r, "met" if r <= 1.3 else "NOT met"))
        else:
            cells.append("-")
        if lf and lf[0] and pd and pd[0]:
            r = pd[0] / lf[0]
            cells.append("%.2f (%s)" % (r, "met" if r >= 1.5 else "NOT met"))
        else:
            cells.append("-")
        rss = [r["rss"] for r in res if r["impl"] == "layerfs" and r["workload"] == w]
        if rss:
            peak = max(rss) / 1024
            cells.append("%.0f MiB max of %d (%s)" % (peak, len(rss), "met" if peak < 100 else "NOT met"))
        else:
            cells.append("-")
        fails = [im for im in ("floor", "layerfs", "podman") if (w, im) in bad]
        has = any(c["group"] == w for c in checks)
        cells.append(("FAIL: " + ",".join(fails)) if fails else ("OK" if has else "-"))
        L.append("| " + " | ".join(cells) + " |")
    if res:
        L += ["", "Resources per pull (medians over the reps; user/sys include child processes: "
              "curl, pigz and tar for the floor; the registry's CPU is separate):", "",
              "| workload | impl | wall s | user s | sys s | peak RSS | registry CPU s |",
              "|---|---|---|---|---|---|---|"]
        for w in pwl:
            for im in ("floor", "layerfs", "podman"):
                rs = [r for r in res if r["impl"] == im and r["workload"] == w]
                if not rs:
                    continue
                m = med[w].get(im)
                reg = _med([r["reg"] for r in rs])
                L.append("| %s | %s | %s | %.2f | %.2f | %.0f MiB | %s |" % (
                    w, im, fmt_s(m[0]) if m and m[0] is not None else "-",
                    _med([r["user"] for r in rs]), _med([r["sys"] for r in rs]),
                    max(r["rss"] for r in rs) / 1024, "-" if reg is None else "%.2f" % reg))
    return L
