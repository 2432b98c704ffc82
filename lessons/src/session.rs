//! Playing a lesson's ```` ```sh ```` blocks the way a learner would, against the real binaries.
//!
//! Servers get a free port and keep running until the end of the lesson; every other command
//! runs with `bash -c`, the freshly built binaries first on `PATH`, and the lesson's addresses
//! (`127.0.0.1:8888`, `127.0.0.1 8888`) replaced by the real ones. The rules are written for
//! lesson authors in `lessons/README.md`.

use crate::catalog::{Catalog, Profile};
use crate::markdown::Document;
use crate::measured::Capture;
use crate::proc::Proc;
use crate::rewrite::{bound_load, default_addr};
use crate::script::{self, Command, Step};
use regex::Regex;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long a server may take to print `listening on`.
const STARTUP: Duration = Duration::from_secs(60);
/// How long a foreground command may run (`loadgen check` waits for idle timeouts).
const FOREGROUND: Duration = Duration::from_secs(120);
/// The same when measuring: load runs and sweeps run at their full length.
const FOREGROUND_MEASURED: Duration = Duration::from_secs(1800);
/// How long an `# interactive` command must keep running to count as started.
const INTERACTIVE: Duration = Duration::from_millis(1500);
/// SIGTERM to SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Runs every command of the lesson at `path`; Err lists every command that did not do what
/// the lesson says.
pub fn run_lesson(path: &Path) -> Result<(), String> {
    play(path, Mode::Test).map(|_| ())
}

/// Plays the lesson at `path` to measure it again: release binaries, every command as the
/// lesson writes it (load runs at full length), and the output of each command kept, in the
/// order they ran, for [`crate::measured::rewrite`]. Err lists every command that did not do
/// what the lesson says (a measurement of a lesson that fails is no measurement).
pub fn measure_lesson(path: &Path) -> Result<Vec<Capture>, String> {
    play(path, Mode::Measure)
}

/// How a lesson is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As the tests play it: debug binaries, load runs shortened.
    Test,
    /// As the lesson's numbers are measured: release binaries, nothing shortened, every
    /// command's output kept.
    Measure,
}

fn play(path: &Path, mode: Mode) -> Result<Vec<Capture>, String> {
    // One lesson at a time: they start servers and load, and the machine is small.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());

    let catalog = Catalog::workspace()?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut failures = Vec::new();
    let mut blocks: Vec<Vec<Step>> = Vec::new();
    for block in Document::parse(&text).blocks_of("sh") {
        let mut steps = Vec::new();
        for command in script::parse_block(&block.lines, block.line + 1) {
            let line = command.line;
            match script::classify(command, catalog) {
                Ok(step) => steps.push(step),
                Err(e) => failures.push(format!("{name}:{line}: {e}")),
            }
        }
        blocks.push(steps);
    }
    let mut packages = needed_packages(&blocks, catalog, &name, &mut failures);
    let examples = needed_examples(&blocks, catalog);
    // An example's package is built too: its binaries' folder holds the examples folder.
    packages.extend(
        examples
            .iter()
            .filter_map(|e| catalog.package_of_example(e).map(String::from)),
    );
    let profile = match mode {
        Mode::Test => Profile::Debug,
        Mode::Measure => Profile::Release,
    };
    let bin_dir = if packages.is_empty() {
        catalog.root().join("target") // nothing of ours to run; PATH needs no change
    } else {
        catalog.build_all_as(profile)?
    };
    catalog.build_examples(&examples, profile)?;
    let mut run = LessonRun::new(name, catalog, bin_dir, mode);
    for (index, steps) in blocks.iter().enumerate() {
        run.block(index, steps);
    }
    run.finish();
    failures.append(&mut run.failures);
    if failures.is_empty() {
        Ok(run.captures)
    } else {
        Err(failures.join("\n\n"))
    }
}

/// The packages whose binaries the lesson runs (and a failure for each unknown `-p`).
fn needed_packages(
    blocks: &[Vec<Step>],
    catalog: &Catalog,
    name: &str,
    failures: &mut Vec<String>,
) -> BTreeSet<String> {
    let mut packages = BTreeSet::new();
    for step in blocks.iter().flatten() {
        match step {
            Step::Cargo {
                command,
                packages: named,
            } => {
                for p in named.iter().filter(|p| !catalog.has_package(p)) {
                    failures.push(format!("{name}:{}: no package {p}", command.line));
                }
            }
            Step::Server { bin, .. } => packages.extend(catalog.package_of(bin).map(String::from)),
            Step::Shell { command } => {
                for word in command
                    .text
                    .split(|c: char| c.is_whitespace() || "|;&()".contains(c))
                {
                    packages.extend(catalog.package_of(word).map(String::from));
                }
            }
            Step::Setup { .. } => {}
        }
    }
    packages
}

/// The examples the lesson runs (`cargo run -p P --example NAME`, rewritten to `NAME`).
fn needed_examples(blocks: &[Vec<Step>], catalog: &Catalog) -> BTreeSet<String> {
    blocks
        .iter()
        .flatten()
        .filter_map(|step| match step {
            Step::Shell { command } => Some(command),
            _ => None,
        })
        .flat_map(|command| {
            command
                .text
                .split(|c: char| c.is_whitespace() || "|;&()".contains(c))
                .filter(|word| catalog.package_of_example(word).is_some())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A server the lesson started.
struct RunningServer {
    lesson_port: u16,
    block: usize,
    command: Command,
    proc: Proc,
}

/// A background job of the current block, for `kill %N`.
enum Job {
    Server(usize),
    Background(Command, Proc),
    Gone,
}

/// Adds a background job to the block's list, numbered as bash numbers it in the learner's
/// terminal: one more than the highest job still there. A job that was killed or waited for is
/// gone from bash's table, so its number is given again when it was the highest (`kill %1`, then
/// a new server, is `%1` again); a gone job below a running one leaves a hole.
fn push_job(jobs: &mut Vec<Job>, job: Job) {
    while matches!(jobs.last(), Some(Job::Gone)) {
        jobs.pop();
    }
    jobs.push(job);
}

struct LessonRun<'a> {
    name: String,
    catalog: &'a Catalog,
    bin_dir: PathBuf,
    /// The lesson's port -> the real one (fixed for the whole lesson, so a restart reuses it).
    ports: HashMap<u16, u16>,
    /// The real ports that no server of ours started on: see [`hold_port`].
    held: Vec<socket2::Socket>,
    servers: Vec<Option<RunningServer>>,
    failures: Vec<String>,
    mode: Mode,
    /// [`Mode::Measure`]: what each command printed, in the order they ended.
    captures: Vec<Capture>,
}

impl<'a> LessonRun<'a> {
    fn new(name: String, catalog: &'a Catalog, bin_dir: PathBuf, mode: Mode) -> Self {
        LessonRun {
            name,
            catalog,
            bin_dir,
            ports: HashMap::new(),
            held: Vec::new(),
            servers: Vec::new(),
            failures: Vec::new(),
            mode,
            captures: Vec::new(),
        }
    }

    fn block(&mut self, index: usize, steps: &[Step]) {
        let mut jobs: Vec<Job> = Vec::new();
        for step in steps {
            let command = step.command();
            eprintln!("[{}:{}] $ {}", self.name, command.line, command.text);
            match step {
                Step::Server {
                    command,
                    lesson_port,
                    ..
                } => {
                    if let Some(i) = self.start_server(index, command, *lesson_port) {
                        push_job(&mut jobs, Job::Server(i));
                    }
                }
                Step::Shell { command } => self.shell(command, &mut jobs),
                Step::Cargo { .. } | Step::Setup { .. } => {}
            }
        }
        for job in jobs {
            if let Job::Background(command, mut proc) = job {
                proc.stop(GRACE);
                self.check_output(&command, &proc.output());
            }
        }
    }

    fn finish(&mut self) {
        for i in 0..self.servers.len() {
            self.stop_server(i);
        }
    }

    fn start_server(&mut self, block: usize, command: &Command, lesson_port: u16) -> Option<usize> {
        // A server on this port from an earlier block is what the learner stops with Ctrl-C
        // before starting another one; in the same block, both run (the SO_REUSEPORT demo).
        for i in 0..self.servers.len() {
            if matches!(&self.servers[i], Some(s) if s.lesson_port == lesson_port && s.block < block)
            {
                self.stop_server(i);
            }
        }
        if command.text.split_whitespace().any(|w| w == script::REDIS) {
            return self.start_redis(block, command, lesson_port);
        }
        let bind = match self.ports.get(&lesson_port) {
            Some(real) => format!("127.0.0.1:{real}"),
            None => "127.0.0.1:0".to_string(),
        };
        // Its other addresses (a Redis to use, an HTTP port) are the lesson's too.
        let text = script::with_addr(&self.substitute_addresses(&command.text), &bind);
        let mut proc = self.spawn(command, &text)?;
        match proc.wait_listening(STARTUP) {
            Ok(addr) if command.fails => {
                proc.stop(GRACE);
                let why = format!("should fail, but it is listening on {addr}");
                self.fail(command, &why, &proc.output());
                None
            }
            Ok(addr) => {
                self.ports.insert(lesson_port, addr.port());
                Some(self.keep_server(block, command, lesson_port, proc))
            }
            Err(e) => {
                proc.stop(GRACE);
                let output = proc.output();
                if command.fails {
                    self.check_output(command, &output);
                } else {
                    self.fail(command, &format!("server did not start: {e}"), &output);
                }
                None
            }
        }
    }

    /// `redis-server`: it cannot pick a free port itself and print it, so the test picks one
    /// (the same one again when the lesson restarts it), and waits until it accepts.
    fn start_redis(&mut self, block: usize, command: &Command, lesson_port: u16) -> Option<usize> {
        let real = self.real_port(lesson_port);
        let text = script::with_redis_port(&command.text, real);
        let mut proc = self.spawn(command, &text)?;
        let deadline = std::time::Instant::now() + STARTUP;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], real));
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if proc.wait(Duration::from_millis(50)).is_some()
                || std::time::Instant::now() > deadline
            {
                proc.stop(GRACE);
                self.fail(command, "redis-server did not start", &proc.output());
                return None;
            }
        }
        Some(self.keep_server(block, command, lesson_port, proc))
    }

    /// Starts `text` (the command as it really runs) in its own process; `None`, and the
    /// lesson fails, when it cannot be started at all.
    fn spawn(&mut self, command: &Command, text: &str) -> Option<Proc> {
        match Proc::spawn(text, &self.bin_dir, self.catalog.root()) {
            Ok(proc) => Some(proc),
            Err(e) => {
                self.fail(command, &format!("cannot start: {e}"), "");
                None
            }
        }
    }

    /// Keeps a server that is up until the lesson stops it; returns its index in `servers`.
    fn keep_server(
        &mut self,
        block: usize,
        command: &Command,
        lesson_port: u16,
        proc: Proc,
    ) -> usize {
        self.servers.push(Some(RunningServer {
            lesson_port,
            block,
            command: command.clone(),
            proc,
        }));
        self.servers.len() - 1
    }

    fn stop_server(&mut self, i: usize) {
        if let Some(mut server) = self.servers[i].take() {
            server.proc.stop(GRACE);
            self.check_output(&server.command, &server.proc.output());
        }
    }

    fn shell(&mut self, command: &Command, jobs: &mut Vec<Job>) {
        if let Some(control) = job_control(&command.text) {
            return self.control_job(command, control, jobs);
        }
        let text = self.substitute_addresses(&default_addr(&command.text));
        let text = match self.mode {
            Mode::Test => bound_load(&text),
            Mode::Measure => text,
        };
        let Some(mut proc) = self.spawn(command, &text) else {
            return;
        };
        if command.background {
            push_job(jobs, Job::Background(command.clone(), proc));
            return;
        }
        if command.interactive {
            let early = proc.wait(INTERACTIVE);
            proc.stop(GRACE);
            match early {
                Some(status) if !status.success() => {
                    let why = format!("exited with {status} instead of waiting for input");
                    self.fail(command, &why, &proc.output())
                }
                _ => self.check_output(command, &proc.output()),
            }
            return;
        }
        let limit = self.foreground();
        let status = proc.wait(limit);
        proc.stop(GRACE);
        let output = proc.output();
        match status {
            None => self.fail(command, &format!("still running after {limit:?}"), &output),
            Some(s) if s.success() && command.fails => {
                self.fail(command, "should fail but exited 0", &output)
            }
            Some(s) if command.threshold && s.code() == Some(1) => {} // missed: allowed
            Some(s) if !s.success() && !command.fails => {
                self.fail(command, &format!("exited with {s}"), &output)
            }
            Some(_) => self.check_output(command, &output),
        }
    }

    /// `kill %N`, `kill -STOP %N`, `wait %N` on the block's jobs.
    fn control_job(&mut self, command: &Command, control: JobControl, jobs: &mut [Job]) {
        let n = control.job();
        let Some(job) = n.checked_sub(1).and_then(|i| jobs.get_mut(i)) else {
            return self.fail(command, &format!("no job %{n} in this block"), "");
        };
        match (control, job) {
            (_, Job::Gone) => self.fail(command, &format!("job %{n} is already gone"), ""),
            (JobControl::Signal(_, signal), Job::Background(_, proc)) => proc.signal(signal),
            (JobControl::Signal(_, signal), Job::Server(i)) => {
                if let Some(server) = &self.servers[*i] {
                    server.proc.signal(signal);
                }
            }
            (JobControl::Wait(_), Job::Server(_)) => self.fail(
                command,
                "waits for a server, which never exits by itself",
                "",
            ),
            (JobControl::Stop(_), job) | (JobControl::Wait(_), job @ Job::Background(..)) => {
                let waiting = matches!(control, JobControl::Wait(_));
                match std::mem::replace(job, Job::Gone) {
                    Job::Server(i) => self.stop_server(i),
                    Job::Background(c, mut proc) => {
                        let status = if waiting {
                            proc.wait(self.foreground())
                        } else {
                            None
                        };
                        proc.stop(GRACE);
                        let output = proc.output();
                        match status {
                            Some(s) if s.success() == c.fails => {
                                self.fail(&c, &format!("exited with {s}"), &output)
                            }
                            None if waiting => self.fail(
                                &c,
                                &format!("still running after {:?}", self.foreground()),
                                &output,
                            ),
                            _ => self.check_output(&c, &output),
                        }
                    }
                    Job::Gone => {}
                }
            }
        }
    }

    /// `127.0.0.1:8888`, `127.0.0.1 8888` (nc) and `sport = :8888` (ss) get the port of the
    /// server the lesson started for port 8888; a port with no server becomes a closed port.
    fn substitute_addresses(&mut self, text: &str) -> String {
        static ADDR: OnceLock<Regex> = OnceLock::new();
        let re = ADDR.get_or_init(|| {
            Regex::new(r"\b(?:127\.0\.0\.1|localhost|0\.0\.0\.0)([: ])(\d{2,5})\b|([sd]port = :)(\d{2,5})\b")
                .expect("regex")
        });
        let mut out = String::new();
        let mut last = 0;
        for cap in re.captures_iter(text) {
            let whole = cap.get(0).expect("match");
            let (prefix, port) = match (cap.get(1), cap.get(2)) {
                (Some(sep), Some(port)) => (format!("127.0.0.1{}", sep.as_str()), port),
                _ => match (cap.get(3), cap.get(4)) {
                    (Some(filter), Some(port)) => (filter.as_str().to_string(), port),
                    _ => continue,
                },
            };
            let lesson_port: u16 = port.as_str().parse().unwrap_or(0);
            let real = self.real_port(lesson_port);
            out.push_str(&text[last..whole.start()]);
            let _ = write!(out, "{prefix}{real}");
            last = whole.end();
        }
        out.push_str(&text[last..]);
        out
    }

    /// The real port for `lesson_port`: the one a server of ours took for it, or else one held
    /// for the rest of the lesson.
    fn real_port(&mut self, lesson_port: u16) -> u16 {
        if let Some(&real) = self.ports.get(&lesson_port) {
            return real;
        }
        let real = match hold_port() {
            Ok((socket, port)) => {
                self.held.push(socket);
                port
            }
            Err(_) => 1, // no socket to be had: port 1, where nothing of ours listens either
        };
        self.ports.insert(lesson_port, real);
        real
    }

    /// How long a foreground command may run.
    fn foreground(&self) -> Duration {
        match self.mode {
            Mode::Test => FOREGROUND,
            Mode::Measure => FOREGROUND_MEASURED,
        }
    }

    /// Checks `# expect:` and `# silent` against what the command printed (an address in the
    /// expected text means the real one); when measuring, keeps the output too.
    fn check_output(&mut self, command: &Command, output: &str) {
        if self.mode == Mode::Measure {
            self.captures.push(Capture {
                command: command.text.clone(),
                output: lesson_addresses(output, &self.ports),
                load: crate::measured::load_average(),
            });
        }
        for wanted in &command.expect {
            let wanted = self.substitute_addresses(wanted);
            if !output.contains(wanted.as_str()) {
                self.fail(command, &format!("output lacks {wanted:?}"), output);
            }
        }
        if command.silent && !output.trim().is_empty() {
            self.fail(command, "should print nothing", output);
        }
    }

    fn fail(&mut self, command: &Command, why: &str, output: &str) {
        let tail: String = {
            let chars: Vec<char> = output.chars().collect();
            chars[chars.len().saturating_sub(3000)..].iter().collect()
        };
        self.failures.push(format!(
            "{}:{}: `{}`: {why}\n--- output ---\n{tail}",
            self.name, command.line, command.text
        ));
    }
}

/// A line that controls one of the block's background jobs (numbered from 1, like a shell's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobControl {
    /// `kill %N`, `kill -TERM %N`, `kill -INT %N`: stop it.
    Stop(usize),
    /// `kill -STOP %N`, `kill -CONT %N`, ...: send it that signal; it stays a job.
    Signal(usize, libc::c_int),
    /// `wait %N`: wait until it exits by itself.
    Wait(usize),
}

impl JobControl {
    fn job(self) -> usize {
        match self {
            JobControl::Stop(n) | JobControl::Signal(n, _) | JobControl::Wait(n) => n,
        }
    }
}

fn job_control(text: &str) -> Option<JobControl> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let number = |job: &str| job.strip_prefix('%')?.parse::<usize>().ok();
    match words.as_slice() {
        ["kill", job] => Some(JobControl::Stop(number(job)?)),
        ["wait", job] => Some(JobControl::Wait(number(job)?)),
        ["kill", signal, job] => {
            let n = number(job)?;
            let name = signal.strip_prefix('-')?;
            let name = name.strip_prefix("SIG").unwrap_or(name);
            Some(match name {
                "TERM" | "INT" | "15" | "2" => JobControl::Stop(n),
                "STOP" => JobControl::Signal(n, libc::SIGSTOP),
                "CONT" => JobControl::Signal(n, libc::SIGCONT),
                "HUP" => JobControl::Signal(n, libc::SIGHUP),
                // A crash: the process gets no chance to say goodbye (lesson 10).
                "KILL" | "9" => JobControl::Signal(n, libc::SIGKILL),
                "USR1" => JobControl::Signal(n, libc::SIGUSR1),
                _ => return None,
            })
        }
        _ => None,
    }
}

/// `output` with the real ports written back as the lesson's (`127.0.0.1:8888`), as a learner
/// who runs the lesson sees them; `ports` maps the lesson's ports to the real ones.
fn lesson_addresses(output: &str, ports: &HashMap<u16, u16>) -> String {
    static ADDR: OnceLock<Regex> = OnceLock::new();
    let re = ADDR.get_or_init(|| {
        Regex::new(r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0):(\d{2,5})\b").expect("regex")
    });
    let lesson_of: HashMap<u16, u16> = ports.iter().map(|(&l, &r)| (r, l)).collect();
    re.replace_all(output, |cap: &regex::Captures| {
        let port: u16 = cap[2].parse().unwrap_or(0);
        match lesson_of.get(&port) {
            Some(lesson) => format!("{}:{lesson}", &cap[1]),
            None => cap[0].to_string(),
        }
    })
    .into_owned()
}

/// A free loopback port, held by a socket that is bound and never listens, with
/// `SO_REUSEADDR`, for as long as the socket lives.
///
/// Held, a connect to it is refused, as the lesson expects of a port with nothing behind it,
/// and the kernel gives it to nobody who asks for any free port: a port let go at once could be
/// handed to the next server started on port 0 in this lesson, and a command meant to find
/// nothing there would find that server. A program the lesson starts on the port itself
/// (`redis-server --port`, `--http-addr`) still gets it: it binds with `SO_REUSEADDR` too,
/// which Linux allows beside a socket that does not listen.
fn hold_port() -> std::io::Result<(socket2::Socket, u16)> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let port = socket
        .local_addr()?
        .as_socket()
        .map_or(1, |addr| addr.port());
    Ok((socket, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A measured output shows the lesson's ports, not the ones the test gave its servers;
    /// other numbers stay.
    #[test]
    fn writes_the_lessons_ports_back() {
        let ports = HashMap::from([(8888, 41234), (9001, 41235)]);
        let output = "listening on 127.0.0.1:41234\nhttp on 127.0.0.1:41235, 41234 msg/s, \
                      127.0.0.1:5555";
        assert_eq!(
            lesson_addresses(output, &ports),
            "listening on 127.0.0.1:8888\nhttp on 127.0.0.1:9001, 41234 msg/s, 127.0.0.1:5555"
        );
    }

    /// A held port refuses connections, no server started on any free port is given it, and a
    /// program the lesson starts on that very port can still listen there.
    #[test]
    fn a_held_port_is_refused_and_still_ours_to_bind() {
        // Twenty held ports, ten thousand free ones asked for: let go, the held ones would be
        // handed out again about fourteen times.
        let held: Vec<_> = (0..20).map(|_| hold_port().expect("a port")).collect();
        let ports: BTreeSet<u16> = held.iter().map(|(_, port)| *port).collect();
        for _ in 0..10_000 {
            let any = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            let port = any.local_addr().expect("addr").port();
            assert!(!ports.contains(&port), "held port {port} handed out");
        }
        let port = held[0].1;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let refused = std::net::TcpStream::connect(addr).expect_err("nothing listens");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        let listener = std::net::TcpListener::bind(addr).expect("SO_REUSEADDR binds beside it");
        std::net::TcpStream::connect(addr).expect("and it listens");
        drop(listener);
    }

    /// Job control lines are recognised, other `kill`s are left to the shell.
    #[test]
    fn reads_job_control() {
        assert_eq!(job_control("kill %2"), Some(JobControl::Stop(2)));
        assert_eq!(job_control("kill -INT %1"), Some(JobControl::Stop(1)));
        assert_eq!(
            job_control("kill -STOP %1"),
            Some(JobControl::Signal(1, libc::SIGSTOP))
        );
        assert_eq!(job_control("wait %3"), Some(JobControl::Wait(3)));
        assert_eq!(job_control("kill 1234"), None);
        assert_eq!(
            job_control("kill -KILL %1"),
            Some(JobControl::Signal(1, libc::SIGKILL))
        );
        assert_eq!(job_control("kill -QUIT %1"), None);
    }

    /// Jobs are numbered as bash numbers them: a job killed or waited for frees its number when
    /// it was the highest; below a running job it leaves a hole.
    #[test]
    fn numbers_jobs_like_bash() {
        let number = |jobs: &[Job], server: usize| {
            jobs.iter()
                .position(|j| matches!(j, Job::Server(i) if *i == server))
                .map(|p| p + 1)
        };
        let mut jobs = Vec::new();
        push_job(&mut jobs, Job::Server(0));
        jobs[0] = Job::Gone; // `kill %1`
        push_job(&mut jobs, Job::Server(1));
        assert_eq!(
            number(&jobs, 1),
            Some(1),
            "after `kill %1` the next job is %1 again"
        );
        push_job(&mut jobs, Job::Server(2));
        jobs[0] = Job::Gone; // `kill %1`, while %2 runs
        push_job(&mut jobs, Job::Server(3));
        assert_eq!(
            number(&jobs, 3),
            Some(3),
            "a gone job below a running one is a hole"
        );
        assert_eq!(number(&jobs, 2), Some(2));
    }
}
