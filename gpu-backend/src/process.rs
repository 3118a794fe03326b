//! The processes below one: what gpu-backend stops with the vLLM it supervises, and what the
//! tests check is gone. Read from `/proc` (Linux; elsewhere none are found).

/// Whether `pid` is a running process (a zombie has exited).
pub fn alive(pid: u32) -> bool {
    // A zombie has exited; only its parent's wait is missing.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat_fields(&stat).is_some_and(|(state, _)| state != "Z"))
}

/// State and parent pid from `/proc/PID/stat` (the name in parentheses may hold spaces).
fn stat_fields(stat: &str) -> Option<(&str, u32)> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Every process below `root` now, from `/proc` (Linux; elsewhere none are found).
pub fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, stat_fields(&stat)?.1))
        })
        .collect();
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        next += 1;
    }
    found.remove(0);
    found
}

#[cfg(test)]
mod tests {
    use super::{descendants, stat_fields};

    #[test]
    fn descendants_are_found_in_proc() {
        assert_eq!(
            stat_fields("12 (a (b) c) S 7 12 12"),
            Some(("S", 7)),
            "a name with spaces and parentheses"
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut found = Vec::new();
        while found.is_empty() && std::time::Instant::now() < deadline {
            found = descendants(child.id());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(found.len(), 1, "the shell's sleep");
        let _ = std::process::Command::new("kill")
            .arg(found[0].to_string())
            .status();
        let _ = child.wait();
    }
}
