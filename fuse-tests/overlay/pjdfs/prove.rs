//! Reading what prove and pjdfstest print: prove's "Test Summary Report" (failed files and
//! subtest numbers, exit statuses, bad plans, TODO checks that passed), one file's TAP
//! stream, and the failures of a run as a set that can be compared and shown.

use crate::common;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// A test file's own directory name (the runner's `tr / _`).
pub fn flat(file: &str) -> String {
    file.replace('/', "_")
}

/// What prove's "Test Summary Report" and closing lines say.
#[derive(Debug, Default)]
pub struct Summary {
    /// test file (relative to tests/) -> its entry in the report
    pub files: BTreeMap<String, FileReport>,
    pub files_run: Option<u32>,
    pub tests_run: Option<u32>,
    pub result: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileReport {
    pub failed: BTreeSet<u32>,
    pub todo_passed: BTreeSet<u32>,
    /// the report's other lines: "Non-zero exit status: 124", "Parse errors: Bad plan. ..."
    pub problems: Vec<String>,
}

#[derive(Clone, Copy)]
enum List {
    Failed,
    TodoPassed,
}

/// Parse prove's (non-verbose) output; `prefix` is stripped from the test file paths.
pub fn parse_summary(out: &str, prefix: &str) -> Summary {
    let mut s = Summary::default();
    let mut in_report = false;
    let mut cur: Option<String> = None;
    let mut list: Option<List> = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Files=") {
            in_report = false;
            s.files_run = rest.split(',').next().and_then(|n| n.trim().parse().ok());
            s.tests_run = rest
                .split(',')
                .nth(1)
                .and_then(|t| t.trim().strip_prefix("Tests="))
                .and_then(|n| n.trim().parse().ok());
            continue;
        }
        if let Some(r) = line.strip_prefix("Result: ") {
            s.result = Some(r.trim().to_string());
            continue;
        }
        if line == "Test Summary Report" {
            in_report = true;
            continue;
        }
        if !in_report || line.starts_with("---") || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            let path = line.split(" (Wstat:").next().unwrap_or(line).trim();
            let rel = path.strip_prefix(prefix).unwrap_or(path).to_string();
            s.files.entry(rel.clone()).or_default();
            cur = Some(rel);
            list = None;
            continue;
        }
        let Some(f) = cur.as_ref().and_then(|c| s.files.get_mut(c)) else {
            continue;
        };
        let t = line.trim();
        let (kind, nums) = if let Some(r) = t
            .strip_prefix("Failed tests:")
            .or_else(|| t.strip_prefix("Failed test:"))
        {
            (Some(List::Failed), r)
        } else if let Some(r) = t.strip_prefix("TODO passed:") {
            (Some(List::TodoPassed), r)
        } else if list.is_some() && t.chars().all(|c| c.is_ascii_digit() || ", -".contains(c)) {
            (list, t)
        } else {
            list = None;
            f.problems.push(t.to_string());
            continue;
        };
        list = kind;
        let set = match kind {
            Some(List::Failed) => &mut f.failed,
            _ => &mut f.todo_passed,
        };
        set.extend(parse_ranges(nums));
    }
    s
}

/// "1-4, 7, 9-11" -> 1 2 3 4 7 9 10 11
fn parse_ranges(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
            out.extend(a..=b);
        }
    }
    out
}

/// 1 2 3 4 7 9 10 11 -> "1-4, 7, 9-11"
pub fn format_ranges(nums: impl IntoIterator<Item = u32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    let flush = |r: (u32, u32), parts: &mut Vec<String>| {
        parts.push(if r.0 == r.1 {
            r.0.to_string()
        } else {
            format!("{}-{}", r.0, r.1)
        })
    };
    for n in nums {
        run = match run {
            Some((a, b)) if n == b + 1 => Some((a, n)),
            Some(r) => {
                flush(r, &mut parts);
                Some((n, n))
            }
            None => Some((n, n)),
        };
    }
    if let Some(r) = run {
        flush(r, &mut parts);
    }
    parts.join(", ")
}

/// One file's TAP stream.
#[derive(Debug, Default)]
struct Tap {
    plan: Option<u32>,
    seen: BTreeSet<u32>,
    /// failed checks (not TODO): number -> the whole "not ok" line
    not_ok: BTreeMap<u32, String>,
}

fn parse_tap(text: &str) -> Tap {
    let mut t = Tap::default();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("1..") {
            t.plan = n.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("not ok ") {
            if let Some(n) = leading_number(rest) {
                t.seen.insert(n);
                if !line.contains("# TODO") {
                    t.not_ok.insert(n, line.to_string());
                }
            }
        } else if let Some(n) = line.strip_prefix("ok ").and_then(leading_number) {
            t.seen.insert(n);
        }
    }
    t
}

fn leading_number(s: &str) -> Option<u32> {
    let d: String = s.chars().take_while(char::is_ascii_digit).collect();
    d.parse().ok()
}

/// The failed checks of one run, each with the line that shows what happened.
#[derive(Debug, Default)]
pub struct Failures {
    /// file -> subtest -> the TAP line (or why there is none)
    checks: BTreeMap<String, BTreeMap<u32, String>>,
    /// file -> prove's other complaints (exit status, bad plan)
    problems: BTreeMap<String, BTreeSet<String>>,
}

impl Failures {
    /// The report's failures, with each file's TAP (kept by the runner in `logs`) for detail.
    pub fn collect(s: &Summary, logs: &Path) -> Failures {
        let mut f = Failures::default();
        for (file, rep) in &s.files {
            let tap = fs::read_to_string(logs.join(format!("{}.tap", flat(file))))
                .map(|t| parse_tap(&t))
                .unwrap_or_default();
            let mut checks = BTreeMap::new();
            for n in &rep.failed {
                let line = tap.not_ok.get(n).cloned();
                checks.insert(
                    *n,
                    line.unwrap_or_else(|| format!("not ok {n} (no TAP line)")),
                );
            }
            for n in 1..=tap.plan.unwrap_or(0) {
                if !tap.seen.contains(&n) {
                    checks.insert(n, format!("subtest {n} did not run"));
                }
            }
            if !checks.is_empty() {
                f.checks.insert(file.clone(), checks);
            }
            if !rep.problems.is_empty() {
                f.problems
                    .insert(file.clone(), rep.problems.iter().cloned().collect());
            }
        }
        f
    }

    pub fn count(&self) -> usize {
        self.checks.values().map(BTreeMap::len).sum::<usize>()
            + self.problems.values().map(BTreeSet::len).sum::<usize>()
    }

    /// What `self` fails and `other` does not.
    pub fn minus(&self, other: &Failures) -> Failures {
        let mut d = Failures::default();
        for (file, checks) in &self.checks {
            let theirs = other.checks.get(file);
            let mine: BTreeMap<u32, String> = checks
                .iter()
                .filter(|(n, _)| !theirs.is_some_and(|t| t.contains_key(n)))
                .map(|(n, l)| (*n, l.clone()))
                .collect();
            if !mine.is_empty() {
                d.checks.insert(file.clone(), mine);
            }
        }
        for (file, probs) in &self.problems {
            let theirs = other.problems.get(file);
            let mine: BTreeSet<String> = probs
                .iter()
                .filter(|p| !theirs.is_some_and(|t| t.contains(*p)))
                .cloned()
                .collect();
            if !mine.is_empty() {
                d.problems.insert(file.clone(), mine);
            }
        }
        d
    }

    /// One block per test file: the failing subtests, then each one's TAP line.
    pub fn describe(&self) -> String {
        let files: BTreeSet<&String> = self.checks.keys().chain(self.problems.keys()).collect();
        let mut s = String::new();
        for file in files {
            let checks = self.checks.get(file);
            let nums = checks.map(|c| format_ranges(c.keys().copied()));
            s += &format!(
                "  {file}: subtests {}\n",
                nums.as_deref().unwrap_or("(none)")
            );
            for p in self.problems.get(file).into_iter().flatten() {
                s += &format!("    prove: {p}\n");
            }
            for line in checks.into_iter().flat_map(BTreeMap::values) {
                s += &format!("    {}\n", shorten(line));
            }
        }
        s
    }
}

/// The TODO checks (POSIX leaves them open) that pass on exactly one side, for information.
pub fn todo_differences(k: &Summary, t: &Summary) -> Vec<String> {
    let none = BTreeSet::new();
    let files: BTreeSet<&String> = k.files.keys().chain(t.files.keys()).collect();
    let mut out = Vec::new();
    for file in files {
        let a = k.files.get(file).map_or(&none, |r| &r.todo_passed);
        let b = t.files.get(file).map_or(&none, |r| &r.todo_passed);
        if a != b {
            out.push(format!(
                "  {file}: TODO passed on kernel overlayfs [{}], under test [{}]",
                format_ranges(a.iter().copied()),
                format_ranges(b.iter().copied())
            ));
        }
    }
    out
}

/// pjdfstest's names are up to 255 characters and its paths up to 4095: show a long name as
/// its first 16 characters and its length, a long path as its first name and its size.
fn shorten(line: &str) -> String {
    let name = |w: &str| -> String {
        if w.len() > 40 && w.is_ascii() {
            format!("{}…({} chars)", &w[..16], w.len())
        } else {
            w.to_string()
        }
    };
    let word = |w: &str| -> String {
        let core = w.trim_matches(|c| c == '\'' || c == ',');
        if core.len() <= 40 {
            return w.to_string();
        }
        let at = w.find(core).unwrap_or(0);
        let (pre, post) = (&w[..at], &w[at + core.len()..]);
        let parts: Vec<&str> = core.split('/').collect();
        let body = if parts.len() > 2 {
            format!(
                "{}/…({} components, {} chars)",
                name(parts[0]),
                parts.len(),
                core.len()
            )
        } else {
            parts.iter().map(|p| name(p)).collect::<Vec<_>>().join("/")
        };
        format!("{pre}{body}{post}")
    };
    line.split(' ').map(word).collect::<Vec<_>>().join(" ")
}

#[test]
fn prove_summary_lists_failed_files_subtests_and_problems() {
    let out = "\
/b/tests/a/00.t .. ok
Test Summary Report
-------------------
/b/tests/chmod/12.t          (Wstat: 0 Tests: 14 Failed: 6)
  Failed tests:  3-4, 7-8, 11-12
/b/tests/chown/00.t          (Wstat: 0 Tests: 1280 Failed: 0)
  TODO passed:   1054, 1058, 1064
                1088, 1094-1095
/b/tests/unlink/14.t         (Wstat: 0 Tests: 7 Failed: 1)
  Failed test:  4
/b/tests/a/01.t (Wstat: 31744 (exited 124) Tests: 1 Failed: 0)
  Non-zero exit status: 124
  Parse errors: Bad plan.  You planned 5 tests but ran 1.
Files=238, Tests=8798, 303 wallclock secs ( 4.83 usr  1.14 sys + 74.71 cusr = 112.86 CPU)
Result: FAIL
";
    let s = parse_summary(out, "/b/tests/");
    assert_eq!((s.files_run, s.tests_run), (Some(238), Some(8798)));
    assert_eq!(s.result.as_deref(), Some("FAIL"));
    let keys: Vec<&str> = s.files.keys().map(String::as_str).collect();
    assert_eq!(keys, ["a/01.t", "chmod/12.t", "chown/00.t", "unlink/14.t"]);
    assert_eq!(
        s.files["chmod/12.t"].failed,
        BTreeSet::from([3, 4, 7, 8, 11, 12])
    );
    assert!(s.files["chown/00.t"].failed.is_empty());
    assert_eq!(
        s.files["chown/00.t"].todo_passed,
        BTreeSet::from([1054, 1058, 1064, 1088, 1094, 1095])
    );
    assert_eq!(s.files["unlink/14.t"].failed, BTreeSet::from([4]));
    assert_eq!(s.files["a/01.t"].problems.len(), 2);
    assert_eq!(format_ranges([1, 2, 3, 4, 7, 9, 10, 11]), "1-4, 7, 9-11");
}

#[test]
fn tap_failures_skip_todo_and_count_what_did_not_run() {
    let tmp = common::tempdir();
    fs::write(
        tmp.path().join("a_01.t.tap"),
        "1..5\nok 1\nnot ok 2 - tried 'x', expected 0, got EPERM\nnot ok 3 # TODO posix\n",
    )
    .unwrap();
    let s = parse_summary(
        "Test Summary Report\n---\nT/a/01.t (Wstat: 0 Tests: 3 Failed: 1)\n  Failed test:  2\n  \
         Parse errors: Bad plan.  You planned 5 tests but ran 3.\nFiles=1, Tests=3\nResult: FAIL\n",
        "T/",
    );
    let f = Failures::collect(&s, tmp.path());
    let nums: Vec<u32> = f.checks["a/01.t"].keys().copied().collect();
    assert_eq!(nums, [2, 4, 5]);
    assert!(f.checks["a/01.t"][&2].contains("got EPERM"));
    assert_eq!(f.count(), 4);
    let none = Failures::default();
    assert_eq!(f.minus(&none).count(), 4);
    assert_eq!(f.minus(&f).count(), 0);
    let d = f.describe();
    assert!(
        d.contains("a/01.t: subtests 2, 4-5") && d.contains("Bad plan"),
        "{d}"
    );
    let long = "x".repeat(255);
    assert_eq!(
        shorten(&format!(
            "tried 'create {long}/y 0644', expected 0, got ENAMETOOLONG"
        )),
        "tried 'create xxxxxxxxxxxxxxxx…(255 chars)/y 0644', expected 0, got ENAMETOOLONG"
    );
    let path = vec!["y".repeat(127); 3].join("/");
    assert_eq!(
        shorten(&format!("tried 'unlink {path}',")),
        "tried 'unlink yyyyyyyyyyyyyyyy…(127 chars)/…(3 components, 383 chars)',"
    );
}
