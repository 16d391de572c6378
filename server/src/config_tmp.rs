// TEMPORARY stand-in until config.rs lands.
use std::path::PathBuf;
pub struct Config {
    pub bind: Vec<String>,
    pub port: u16,
    pub threads: u64,
    pub databases: u64,
    pub requirepass: String,
    pub maxclients: u64,
    pub proto_max_bulk_len: u64,
    pub client_query_buffer_limit: u64,
    pub dir: PathBuf,
    pub hz: u64,
    pub timeout: u64,
    pub tcp_backlog: u64,
    pub loglevel: String,
    pub logfile: String,
    pub config_file: Option<PathBuf>,
}
pub enum Cli {
    Run(Box<Config>),
    Help,
    Version,
}
pub fn usage() -> String {
    String::new()
}
pub fn parse_command_line(args: &[String]) -> Result<Cli, String> {
    let mut c = Config {
        bind: vec!["127.0.0.1".into()],
        port: 6379,
        threads: 0,
        databases: 16,
        requirepass: String::new(),
        maxclients: 10000,
        proto_max_bulk_len: 512 << 20,
        client_query_buffer_limit: 1 << 30,
        dir: "./data".into(),
        hz: 10,
        timeout: 0,
        tcp_backlog: 511,
        loglevel: "notice".into(),
        logfile: String::new(),
        config_file: None,
    };
    let mut i = 0;
    while i + 1 < args.len() {
        let v = args[i + 1].clone();
        match args[i].as_str() {
            "--port" => c.port = v.parse().map_err(|_| "bad port")?,
            "--threads" => c.threads = v.parse().map_err(|_| "bad")?,
            "--dir" => c.dir = v.into(),
            "--requirepass" => c.requirepass = v,
            "--maxclients" => c.maxclients = v.parse().map_err(|_| "bad")?,
            "--databases" => c.databases = v.parse().map_err(|_| "bad")?,
            _ => return Err(format!("unknown {}", args[i])),
        }
        i += 2;
    }
    Ok(Cli::Run(Box::new(c)))
}
impl Config {
    pub fn get(&self, _p: &[u8]) -> Vec<(String, String)> {
        vec![]
    }
    pub fn set(&mut self, _p: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<&'static str>, String> {
        Err("ERR nope".into())
    }
    pub fn rewrite(&self) -> Result<(), String> {
        Err("ERR nope".into())
    }
}
