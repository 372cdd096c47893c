//! A guest that imports `wasi:sockets` (through `std::net`). The host must
//! refuse it at load time, before it runs.

wit_bindgen::generate!({ path: "../../wit", world: "automation" });

struct Component;

impl Guest for Component {
    fn run(_phase: String, _args: Vec<(String, String)>) -> Result<String, ferry::host::types::Error> {
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Ok("connected".into()),
            Err(e) => Ok(format!("connect failed: {e}")),
        }
    }
}

export!(Component);
