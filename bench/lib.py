#!/usr/bin/env python3
"""Helper for bench/run.sh (layerfs benchmark). Standard library only.

Subcommands:
  fuse-pids MNT [BEFORE...]   PIDs holding /dev/fuse whose argv names MNT (else: new holders)
  proc-stat PID...            "<cpu_ticks> <VmRSS KiB> <VmHWM KiB>" summed/maxed over PIDs
  build-1m DIR N              lower layer with N empty files (1000 per directory)
  gen-image OUTDIR SRCROOT    3-layer gzip docker-archive (+ OCI layout of the same blobs)
  manifest ROOT [--hash] [--paths FILE]   one line per entry: path type mode uid gid size target [sha256]
  mutate ROOT COPYUP_LIST     a fixed set of writes through a mount (for the correctness check)
  tree-sum DIR                "<entries> <bytes> <sha1 of sorted path+size list>"
  gen-pull-image, layer-manifest, time-fields   the pull phase's (see pull.py)
  report OUTDIR               merge union results.json + extra.tsv into the final table
"""
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ /proc helpers
def fuse_holders():
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                try:
                    if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == "/dev/fuse":
                        out.append(int(pid))
                        break
                except OSError:
                    pass
        except OSError:
            pass
    return out


def cmd_fuse_pids(mnt, before):
    holders = fuse_holders()
    mnt = mnt.rstrip("/")
    mine = []
    for pid in holders:
        try:
            args = open("/proc/%d/cmdline" % pid, "rb").read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a.rstrip("/") == mnt or a.endswith("=" + mnt) for a in args):
            mine.append(pid)
    if not mine:
        b = {int(x) for x in before}
        mine = [p for p in holders if p not in b]
    print(" ".join(str(p) for p in sorted(mine)))


def cmd_proc_stat(pids):
    ticks = rss = hwm = 0
    for pid in pids:
        try:
            s = open("/proc/%s/stat" % pid).read()
            f = s[s.rindex(")") + 2:].split()
            ticks += int(f[11]) + int(f[12])
            for line in open("/proc/%s/status" % pid):
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]))
        except (OSError, ValueError):
            pass
    print(ticks, rss, hwm)


# ------------------------------------------------------------------ datasets
def cmd_build_1m(d, n):
    n = int(n)
    per = 1000
    os.makedirs(d, exist_ok=True)
    made = 0
    for i in range((n + per - 1) // per):
        sub = os.path.join(d, "d%04d" % i)
        os.makedirs(sub, exist_ok=True)
        for j in range(min(per, n - made)):
            os.close(os.open(os.path.join(sub, "f%04d" % j), os.O_CREAT | os.O_WRONLY, 0o644))
        made += min(per, n - made)
    log("built %d files in %s" % (made, d))


def sh(cmd):
    log("$", cmd)
    subprocess.run(cmd, shell=True, check=True, executable="/bin/bash")


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def cmd_gen_image(out, src):
    """3 gzip layers from real trees under SRCROOT (normally /usr), >= 200 MB compressed:
    1: lib/x86_64-linux-gnu   2: share/doc + share/locale + share/man (+ a shadow of layer 1)
    3: small: whiteouts (.wh.), an opaque dir (.wh..wh..opq), changed files."""
    os.makedirs(out, exist_ok=True)
    stage = os.path.join(out, "stage")
    blobs = os.path.join(out, "oci", "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    comp = "pigz -p 2 -6" if subprocess.run("command -v pigz", shell=True,
                                            stdout=subprocess.DEVNULL).returncode == 0 else "gzip -6"
    layers = []  # (blob_hex, diff_hex, size)
    specs = [
        ("l1", ["lib/x86_64-linux-gnu"]),
        ("l2", ["share/doc", "share/locale", "share/man"]),
    ]
    for name, subs in specs:
        ls = os.path.join(stage, name, "usr")
        os.makedirs(ls, exist_ok=True)
        for s in subs:
            os.makedirs(os.path.dirname(os.path.join(ls, s)), exist_ok=True)
            sh("cp -a %s %s" % (os.path.join(src, s), os.path.join(ls, s)))
    # layer 3: OCI whiteouts and an opaque dir over layer 1/2 content, a few changed files
    l3 = os.path.join(stage, "l3", "usr")
    n = 0
    for dp, dns, fns in os.walk(os.path.join(stage, "l1", "usr")):
        for fn in sorted(fns):
            n += 1
            rel = os.path.relpath(os.path.join(dp, fn), os.path.join(stage, "l1"))
            if n % 50 == 0:
                d = os.path.join(stage, "l3", os.path.dirname(rel))
                os.makedirs(d, exist_ok=True)
                open(os.path.join(d, ".wh." + fn), "w").close()
            elif n % 50 == 1 and os.path.isfile(os.path.join(dp, fn)) and not os.path.islink(os.path.join(dp, fn)):
                d = os.path.join(stage, "l3", os.path.dirname(rel))
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, fn), "w") as f:
                    f.write("changed in layer 3\n")
    opq = os.path.join(l3, "share", "locale", "de")
    os.makedirs(opq, exist_ok=True)
    open(os.path.join(opq, ".wh..wh..opq"), "w").close()
    with open(os.path.join(opq, "new-in-l3"), "w") as f:
        f.write("opaque dir content\n")
    for name in ("l1", "l2", "l3"):
        tmp = os.path.join(out, name + ".tar.gz.tmp")
        dfile = os.path.join(out, name + ".diffid")
        sh("tar -C %s --sort=name --numeric-owner -cf - usr | tee >(sha256sum | cut -d' ' -f1 > %s) | %s > %s"
           % (os.path.join(stage, name), dfile, comp, tmp))
        time.sleep(0.2)
        for _ in range(50):
            if os.path.getsize(dfile) > 0:
                break
            time.sleep(0.1)
        diff = open(dfile).read().strip()
        blob = sha256_file(tmp)
        size = os.path.getsize(tmp)
        os.rename(tmp, os.path.join(blobs, blob))
        os.unlink(dfile)
        layers.append((blob, diff, size))
        log("layer %s: %.1f MB gzip, blob %s diff %s" % (name, size / 1e6, blob[:12], diff[:12]))
    sh("rm -rf %s" % stage)
    cfg = {
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + l[1] for l in layers]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "layerfs bench layer %d" % i}
                    for i in range(1, 4)],
    }
    cb = json.dumps(cfg, separators=(",", ":")).encode()
    chex = hashlib.sha256(cb).hexdigest()
    open(os.path.join(blobs, chex), "wb").write(cb)
    man = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + chex, "size": len(cb)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + l[0], "size": l[2]} for l in layers],
    }
    mb = json.dumps(man, separators=(",", ":")).encode()
    mhex = hashlib.sha256(mb).hexdigest()
    open(os.path.join(blobs, mhex), "wb").write(mb)
    idx = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + mhex,
        "size": len(mb), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    json.dump(idx, open(os.path.join(out, "oci", "index.json"), "w"))
    json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(out, "oci", "oci-layout"), "w"))
    # docker-archive: manifest.json + the same blobs (gzip layers), outer tar uncompressed
    da = os.path.join(out, "da")
    os.makedirs(os.path.join(da, "blobs", "sha256"), exist_ok=True)
    for h in [chex] + [l[0] for l in layers]:
        os.link(os.path.join(blobs, h), os.path.join(da, "blobs", "sha256", h))
    json.dump([{"Config": "blobs/sha256/" + chex, "RepoTags": ["bench/big:latest"],
                "Layers": ["blobs/sha256/" + l[0] for l in layers]}],
              open(os.path.join(da, "manifest.json"), "w"))
    sh("tar -C %s -cf %s manifest.json blobs" % (da, os.path.join(out, "big.docker.tar.tmp")))
    os.rename(os.path.join(out, "big.docker.tar.tmp"), os.path.join(out, "big.docker.tar"))
    sh("rm -rf %s" % da)
    info = {"image_id": "sha256:" + chex, "layers": [{"blob": l[0], "diff_id": l[1], "gz_bytes": l[2]}
                                                     for l in layers],
            "gz_total": sum(l[2] for l in layers)}
    json.dump(info, open(os.path.join(out, "image.json"), "w"), indent=1)
    log("image %s: %.1f MB in 3 gzip layers" % (chex[:12], info["gz_total"] / 1e6))


# ------------------------------------------------------------------ correctness
def entry_line(root, rel, do_hash):
    p = os.path.join(root, rel) if rel else root
    st = os.lstat(p)
    mode = st.st_mode
    if os.path.stat.S_ISDIR(mode):
        t, size = "d", 0   # directory sizes differ between filesystems by design
    elif os.path.stat.S_ISLNK(mode):
        t, size = "l", st.st_size
    elif os.path.stat.S_ISREG(mode):
        t, size = "f", st.st_size
    else:
        t, size = "o", 0
    tgt = os.readlink(p) if t == "l" else "-"
    line = "%s\t%s\t%o\t%d\t%d\t%d\t%s" % (rel or ".", t, os.path.stat.S_IMODE(mode), st.st_uid,
                                           st.st_gid, size, tgt)
    if do_hash and t == "f":
        line += "\t" + sha256_file(p)
    return line


def cmd_manifest(root, do_hash, paths=None):
    out = sys.stdout
    if paths:
        for rel in open(paths).read().split("\n"):
            if not rel:
                continue
            try:
                out.write(entry_line(root, rel, do_hash) + "\n")
            except FileNotFoundError:
                out.write("%s\tMISSING\n" % rel)
        return
    for dp, dns, fns in os.walk(root):
        dns.sort()
        rd = os.path.relpath(dp, root)
        rd = "" if rd == "." else rd
        for n in sorted(dns + fns):
            out.write(entry_line(root, os.path.join(rd, n), do_hash) + "\n")


def cmd_mutate(root, cu_list):
    """writes through the mount; every step is deterministic so all impls must agree"""
    files = [l.split("\t")[0] for l in open(cu_list).read().split("\n") if l][:200]
    for p in files:
        with open(os.path.join(root, p), "a") as f:
            f.write("appended\n")
    for p in files[:20]:
        os.chmod(os.path.join(root, p), 0o600)
    for p in files[20:40]:
        os.unlink(os.path.join(root, p))
    for p in files[40:50]:
        os.rename(os.path.join(root, p), os.path.join(root, p) + ".renamed")
    subprocess.run(["rm", "-rf", os.path.join(root, "usr/include/linux")], check=True)
    os.makedirs(os.path.join(root, "newdir/a/b"))
    for i in range(100):
        with open(os.path.join(root, "newdir/a/b/n%d" % i), "w") as f:
            f.write("new %d\n" % i)
    os.symlink("../usr/include", os.path.join(root, "newdir/link"))
    with open(os.path.join(root, "big/quarter.bin"), "r+b") as f:
        f.seek(1000)
        f.write(b"overwritten")
        f.truncate(100000)
    # (no rename of a lower directory: kernel overlayfs without redirect_dir answers EXDEV)
    os.mkdir(os.path.join(root, "usr/include/linux"))
    with open(os.path.join(root, "usr/include/linux/recreated.h"), "w") as f:
        f.write("/* recreated */\n")
    # paths whose content must be re-hashed afterwards
    for p in files[:20] + files[50:]:
        print(p)
    for p in files[40:50]:
        print(p + ".renamed")
    print("big/quarter.bin")
    print("usr/include/linux/recreated.h")
    for i in range(0, 100, 7):
        print("newdir/a/b/n%d" % i)


def cmd_tree_sum(d):
    n = b = 0
    h = hashlib.sha1()
    items = []
    for dp, dns, fns in os.walk(d):
        for x in dns + fns:
            p = os.path.join(dp, x)
            st = os.lstat(p)
            sz = st.st_size if os.path.stat.S_ISREG(st.st_mode) else 0
            n += 1
            b += sz
            items.append("%s %d" % (os.path.relpath(p, d), sz))
    for it in sorted(items):
        h.update(it.encode() + b"\n")
    print(n, b, h.hexdigest())


# ------------------------------------------------------------------ report
TARGETS = {
    # workload prefix: (target vs kernel, target speedup vs fuse-overlayfs 2.0, label)
    "walk-stat-again": (1.3, 2.0, "stat walk warm"),
    "walk-stat-lowerwarm": (1.3, 2.0, "stat walk, fresh mount"),
    "walk-stat-cold": (2.0, 2.0, "stat walk cold"),
    "readdir-100k-lowerwarm": (1.5, 2.0, "readdir 100k"),
    "readdir-100k-cold": (1.5, 2.0, "readdir 100k cold"),
    "ls-l-100k-lowerwarm": (1.5, 2.0, "ls -l 100k"),
    "ls-l-100k-again": (1.5, 2.0, "ls -l 100k again"),
    "seqread-1GiB-again": (1.1, 1.0, "seq read warm"),
    "seqread-1GiB-lowerwarm": (1.1, 1.0, "seq read, fresh mount"),
    "seqread-256MiB-again": (1.1, 1.0, "seq read warm"),
    "seqread-256MiB-lowerwarm": (1.1, 1.0, "seq read, fresh mount"),
    "randread-4k-lowerwarm": (1.1, 1.0, "random 4k"),
    "copyup-append-": (1.3, 1.5, "copy-up small files"),
    "copyup-1GiB-open+write": (1.0, 1.0, "copy-up 1 GiB"),
    "copyup-1GiB+fsync": (1.0, 1.0, "copy-up 1 GiB + fsync"),
    "copyup-256MiB-open+write": (1.0, 1.0, "copy-up 256 MiB"),
    "copyup-256MiB+fsync": (1.0, 1.0, "copy-up 256 MiB + fsync"),
    "untar-": (1.5, 1.5, "untar"),
    "rm-rf-": (2.0, 2.0, "rm -rf lower tree"),
    "git-status-again": (1.5, 2.0, "git status warm"),
    "git-status-lowerwarm": (1.5, 2.0, "git status, fresh mount"),
    "git-status-cold": (2.0, 2.0, "git status cold"),
    "pcat-P2-lowerwarm": (None, None, "parallel read (2 procs)"),
    "walk-1M": (None, None, "stat walk of 1M entries"),
    "walk-all-warm": (1.3, 2.0, "stat walk of the whole tree, warm"),
    "walk-all-cold": (2.0, 2.0, "stat walk of the whole tree, cold"),
    "hl-walk-fresh": (2.0, 2.5, "stat walk, every file 3 names, fresh mount"),
    "hl-walk-again": (1.3, 2.5, "stat walk, every file 3 names, again"),
    "imgmount-find": (2.0, 2.5, "find over an image mount"),
    "imgmount-tar": (2.0, 2.5, "tar -c of an image mount"),
    "exec-busybox-": (1.2, None, "1,000 execs from an image mount"),
}


def target_for(wl):
    if wl in TARGETS:
        return TARGETS[wl]
    for k, v in TARGETS.items():
        if k.endswith("-") and wl.startswith(k):
            return v
    return (None, None, "")


def fmt_s(x):
    if x is None:
        return "-"
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    if x >= 1:
        return "%.2f" % x
    return "%.3f" % x


def load_extra(path):
    rows, checks, meta, mem = [], [], {}, []
    if not os.path.exists(path):
        return rows, checks, meta, mem
    for line in open(path):
        p = line.rstrip("\n").split("\t")
        if p[0] == "res":       # res group impl workload rep seconds
            rows.append({"group": p[1], "impl": p[2], "workload": p[3], "rep": int(p[4]),
                         "seconds": float(p[5]) if p[5] else None})
        elif p[0] == "check":   # check group impl OK|FAIL text
            checks.append({"group": p[1], "impl": p[2], "ok": p[3] == "OK", "text": p[4]})
        elif p[0] == "meta":
            meta[p[1]] = p[2]
        elif p[0] == "mem":     # mem impl walk_s cpu_s hwm_kib rss_after_walk_kib rss_after_drop_kib
            mem.append(p[1:])
    return rows, checks, meta, mem


def union_checks(notes):
    """turn unionbench's notes into OK/FAIL per (impl, group)"""
    import re
    out = []
    for n in notes:
        t, g, im = n["text"], n["workload"], n["impl"]
        ok = None
        if g == "walk":
            ok = "identical" in t
        elif g == "bigdir":
            m = re.search(r"returned (\d+) entries \(expect (\d+)\)", t)
            ok = bool(m) and m.group(1) == m.group(2)
        elif g == "copyup":
            m = re.search(r"size after append:? (\d+) \(expect (\d+)", t)
            ok = bool(m) and m.group(1) == m.group(2)
        elif g == "rm":
            ok = "STILL VISIBLE" not in t
        elif g == "git":
            m = re.search(r"lines: (\d+) \(expect 0\)", t)
            ok = bool(m) and m.group(1) == "0"
        elif g == "untar":
            ok = None  # compared across impls below
        out.append({"group": g, "impl": im, "ok": ok, "text": t})
    # untar: all impls must extract the same number of entries
    ut = [c for c in out if c["group"] == "untar"]
    if ut:
        ref = [c for c in ut if c["impl"] == "kernel"] or ut[:1]
        for c in ut:
            c["ok"] = c["text"] == ref[0]["text"]
    return [c for c in out if c["ok"] is not None]


GROUP_OF = [("walk-1M", "rss1m"), ("walk-all", "walk-all"), ("walk", "walk"), ("readdir", "bigdir"), ("ls-l", "bigdir"),
            ("seqread", "seqread"), ("randread", "randread"), ("copyup", "copyup"),
            ("untar", "untar"), ("rm-rf", "rm"), ("git", "git"), ("pcat", "pcat"),
            ("load", "image"), ("pull-", "pull"), ("hl-", "hl-list"), ("imgmount", "imgmount"),
            ("exec-", "exec")]


def group_of(wl):
    for p, g in GROUP_OF:
        if wl.startswith(p):
            return g
    return wl


def cmd_report(outdir):
    impls = open(os.path.join(outdir, "impls")).read().split()
    order = [i for i in ("kernel", "layerfs", "fuse-overlayfs-2.0", "fuse-overlayfs-1.10", "raw")
             if i in impls] + [i for i in impls if i not in ("kernel", "layerfs", "fuse-overlayfs-2.0",
                                                            "fuse-overlayfs-1.10", "raw")]
    med = {}   # wl -> impl -> (median, n, cpu, hwm)
    wls = []
    checks = []
    uj = os.path.join(outdir, "union", "results.json")
    meta = {}
    if os.path.exists(uj):
        u = json.load(open(uj))
        meta.update(u.get("meta", {}))
        for wl, per in u["summary"].items():
            wls.append(wl)
            med[wl] = {}
            for im, s in per.items():
                med[wl][im] = (s.get("median_s"), s.get("n", 0), s.get("daemon_cpu_median_s"),
                               s.get("daemon_hwm_max_kib"), s.get("failed", 0))
        checks += union_checks(u.get("notes", []))
    rows, xchecks, xmeta, mem = load_extra(os.path.join(outdir, "extra.tsv"))
    meta.update(xmeta)
    checks += xchecks
    for r in rows:
        if r["workload"] not in med:
            med[r["workload"]] = {}
            wls.append(r["workload"])
    byw = {}
    for r in rows:
        if r["seconds"] is not None:
            byw.setdefault(r["workload"], {}).setdefault(r["impl"], []).append(r["seconds"])
    for wl, per in byw.items():
        for im, xs in per.items():
            med[wl][im] = (statistics.median(xs), len(xs), None, None, 0)
    img_impls = []
    for wl in wls:
        for im in med[wl]:
            if im not in order and im not in img_impls:
                img_impls.append(im)
    # correctness per (group, impl)
    bad = {}
    for c in checks:
        if not c["ok"]:
            bad.setdefault((c["group"], c["impl"]), []).append(c["text"])

    L = []
    L.append("## Union filesystem: median seconds (ratio vs kernel overlayfs)")
    L.append("")
    hdr = ["workload"] + order + ["layerfs vs kernel (target)", "fuse-overlayfs-2.0 / layerfs (target)", "check"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    kbase = "kernel"
    for wl in wls:
        if group_of(wl) in ("image", "pull"):
            continue
        per = med[wl]
        cells = [wl]
        for im in order:
            m = per.get(im)
            if not m or m[0] is None:
                cells.append("FAIL" if m and m[4] else "-")
                continue
            c = fmt_s(m[0])
            k = per.get(kbase)
            if im != kbase and k and k[0]:
                c += " (%.2fx)" % (m[0] / k[0])
            if (group_of(wl), im) in bad:
                c += " **FAIL**"
            cells.append(c)
        tk, tf, _ = target_for(wl)
        lf = per.get("layerfs")
        k = per.get(kbase)
        fo = per.get("fuse-overlayfs-2.0")
        if lf and lf[0] and k and k[0]:
            r = lf[0] / k[0]
            cells.append("%.2f%s" % (r, "" if tk is None else " (<=%.1f: %s)" % (tk, "met" if r <= tk else "NOT met")))
        else:
            cells.append("-")
        if lf and lf[0] and fo and fo[0]:
            r = fo[0] / lf[0]
            if tf is None:
                cells.append("%.2f" % r)
            elif tf <= 1.0:
                cells.append("%.2f (not slower: %s)" % (r, "met" if r >= 0.95 else "NOT met"))
            else:
                cells.append("%.2f (>=%.1f: %s)" % (r, tf, "met" if r >= tf else "NOT met"))
        else:
            cells.append("-")
        g = group_of(wl)
        fails = [im for im in order if (g, im) in bad]
        has = any(c["group"] == g for c in checks)
        cells.append(("FAIL: " + ",".join(fails)) if fails else ("OK" if has else "-"))
        L.append("| " + " | ".join(cells) + " |")
    if len(L) == 4:   # no union-filesystem rows (e.g. --phases image,pull): no empty table
        L = []

    # daemon CPU / RSS
    fimpls = [im for im in order if any(med[w].get(im) and med[w][im][2] is not None for w in wls)]
    if fimpls:
        L.append("")
        L.append("## FUSE daemons: median CPU seconds during the workload / peak RSS (VmHWM)")
        L.append("")
        L.append("| workload | " + " | ".join(fimpls) + " |")
        L.append("|" + "---|" * (len(fimpls) + 1))
        for wl in wls:
            if not any(med[wl].get(im) and med[wl][im][2] is not None for im in fimpls):
                continue
            cells = [wl]
            for im in fimpls:
                m = med[wl].get(im)
                cells.append("%.2fs / %.0f MiB" % (m[2], (m[3] or 0) / 1024) if m and m[2] is not None else "-")
            L.append("| " + " | ".join(cells) + " |")
    if mem:
        L.append("")
        L.append("## Walk of 1M lower entries: daemon memory (target: layerfs <= 64 MiB after drop_caches, lower than fuse-overlayfs)")
        L.append("")
        L.append("| impl | walk s | daemon CPU s | peak RSS (VmHWM) | RSS after walk | RSS after `echo 2 > drop_caches` |")
        L.append("|---|---|---|---|---|---|")
        for m in mem:
            im, ws, cpu, hwm, ra, rd = (m + [""] * 6)[:6]
            f = lambda v: "%.0f MiB" % (int(v) / 1024) if v not in ("", "-") else "-"
            L.append("| %s | %s | %s | %s | %s | %s |" % (im, fmt_s(float(ws)) if ws else "-", cpu or "-",
                                                        f(hwm), f(ra), f(rd)))
    # image store
    iwl = [w for w in wls if group_of(w) == "image"]
    if iwl:
        cols = []
        for w in iwl:
            for im in med[w]:
                if im not in cols:
                    cols.append(im)
        pref = ["floor", "layerfs", "podman", "umoci"]
        cols = [c for c in pref if c in cols] + [c for c in cols if c not in pref]
        L.append("")
        L.append("## Image store: median seconds (ratio vs the zcat|tar floor)")
        L.append("")
        L.append("| image / workload | " + " | ".join(cols) + " | layerfs vs floor (target <=1.2) | podman / layerfs (target >=1.5) | check |")
        L.append("|" + "---|" * (len(cols) + 4))
        for w in iwl:
            per = med[w]
            cells = [w]
            fl = per.get("floor")
            for im in cols:
                m = per.get(im)
                if not m or m[0] is None:
                    cells.append("-")
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
                cells.append("%.2f (%s)" % (r, "met" if r <= 1.2 else "NOT met"))
            else:
                cells.append("-")
            if lf and lf[0] and pd and pd[0]:
                r = pd[0] / lf[0]
                cells.append("%.2f (%s)" % (r, "met" if r >= 1.5 else "NOT met"))
            else:
                cells.append("-")
            fails = [im for im in cols if (w, im) in bad]
            has = any(c["group"] == w for c in checks)
            cells.append(("FAIL: " + ",".join(fails)) if fails else ("OK" if has else "-"))
            L.append("| " + " | ".join(cells) + " |")
    import pull
    L += pull.report_lines(outdir, med, wls, bad, checks, fmt_s)
    L.append("")
    L.append("## Correctness checks")
    L.append("")
    groups = []
    cimpls = []
    for c in checks:
        if c["group"] not in groups:
            groups.append(c["group"])
        if c["impl"] not in cimpls:
            cimpls.append(c["impl"])
    cimpls = [i for i in order if i in cimpls] + [i for i in cimpls if i not in order]
    L.append("| check | " + " | ".join(cimpls) + " |")
    L.append("|" + "---|" * (len(cimpls) + 1))
    for g in groups:
        cells = []
        for im in cimpls:
            cs = [c for c in checks if c["group"] == g and c["impl"] == im]
            cells.append("-" if not cs else ("OK" if all(c["ok"] for c in cs) else "**FAIL**"))
        L.append("| %s | %s |" % (g, " | ".join(cells)))
    L.append("")
    for c in checks:
        L.append("- %s %s / %s: %s" % ("OK  " if c["ok"] else "FAIL", c["impl"], c["group"], c["text"]))
    skipped = os.path.join(outdir, "skipped.txt")
    if os.path.exists(skipped) and os.path.getsize(skipped):
        L.append("")
        L.append("## Skipped")
        L.append("")
        for line in open(skipped):
            L.append("- " + line.strip())
    text = "\n".join(L) + "\n"
    open(os.path.join(outdir, "table.md"), "w").write(text)
    sys.stdout.write(text)
    nfail = sum(1 for c in checks if not c["ok"])
    if nfail:
        print("\n%d correctness check(s) FAILED" % nfail)


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    c = a[0]
    if c == "fuse-pids":
        cmd_fuse_pids(a[1], a[2:])
    elif c == "proc-stat":
        cmd_proc_stat(a[1:])
    elif c == "build-1m":
        cmd_build_1m(a[1], a[2])
    elif c == "gen-image":
        cmd_gen_image(a[1], a[2])
    elif c == "manifest":
        paths = a[a.index("--paths") + 1] if "--paths" in a else None
        cmd_manifest(a[1], "--hash" in a, paths)
    elif c == "mutate":
        cmd_mutate(a[1], a[2])
    elif c == "tree-sum":
        cmd_tree_sum(a[1])
    elif c == "report":
        cmd_report(a[1])
    elif c in ("gen-pull-image", "layer-manifest", "time-fields"):
        import pull
        {"gen-pull-image": lambda: pull.cmd_gen_pull_image(a[1], a[2]),
         "layer-manifest": lambda: pull.cmd_layer_manifest(a[1]),
         "time-fields": lambda: pull.cmd_time_fields(a[1])}[c]()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
