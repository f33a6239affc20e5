"""The shipped deployment files run by the real programs, as README's "Deploying" installs them, on
this machine but apart from anything it runs: Debian's nginx and pip's supervisord with their own
configuration, pid and socket files in a temporary folder, chip on spare loopback ports.

Only what names this machine is rewritten: /opt/chip (this checkout), /etc/chip/chip.env, /var/log
and /run paths (the temporary folder), ports 8070/8071/18070/18071/443 (spare ones), the `chip`
user (the one running the test), the certificate (a self-signed one made here), and in chip.env
the stores' and Courier's URLs.
"""

import os
import pathlib
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tornado.testing import bind_unused_port

from tests.servers import ROOT

BIN = pathlib.Path(sys.executable).parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def spare_port() -> int:
    sock, port = bind_unused_port()
    sock.close()
    return port


class Deployment:
    def __init__(self, db: str, valkey: str, courier_url: str):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="chip-test-deploy-"))
        (self.dir / "log").mkdir()
        self.ports = [spare_port(), spare_port()]
        self.https_port = spare_port()
        self.supervisord = self.nginx = None
        self.conf = self.dir / "supervisord.conf"
        self._write_env_file(db, valkey, courier_url)
        self._write_supervisor_files()
        self._write_nginx_files()

    # the shipped files, pointed at this machine's spare places

    def _rewrite(self, text: str) -> str:
        for shipped, port in zip((8070, 8071), self.ports):
            text = re.sub(rf"\b1{shipped}\b", str(spare_port()), text)  # its metrics port
            text = re.sub(rf"\b{shipped}\b", str(port), text)
        return (
            text.replace("/opt/chip", str(ROOT))
            .replace("/etc/chip/chip.env", str(self.dir / "chip.env"))
            .replace("/var/log/chip", str(self.dir / "log"))
            .replace("/run/", f"{self.dir}/")
            .replace("user=chip", f"user={pwd.getpwuid(os.geteuid()).pw_name}")
        )

    def _write_env_file(self, db, valkey, courier_url):
        text = (ROOT / "deploy" / "chip.env").read_text()
        for name, value in (("CHIP_DB", db), ("CHIP_VALKEY", valkey), ("CHIP_COURIER_URL", courier_url)):
            text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
            assert count == 1, f"deploy/chip.env sets {name} once"
        (self.dir / "chip.env").write_text(text)

    def _write_supervisor_files(self):
        self.conf.write_text(self._rewrite((ROOT / "supervisord.conf").read_text()))
        program = self.dir / "deploy" / "supervisor" / "chip.conf"  # where supervisord.conf includes it from
        program.parent.mkdir(parents=True)
        program.write_text(self._rewrite((ROOT / "deploy" / "supervisor" / "chip.conf").read_text()))

    def _write_nginx_files(self):
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=chat.example.com",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        site = self._rewrite((ROOT / "deploy" / "nginx" / "chip.conf").read_text())
        site = (
            site.replace("listen 443 ssl", f"listen 127.0.0.1:{self.https_port} ssl")
            .replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", str(cert))
            .replace("/etc/ssl/private/ssl-cert-snakeoil.key", str(key))
        )
        (self.dir / "site.conf").write_text(site)
        # what Debian's /etc/nginx/nginx.conf gives a site, with this folder for every file
        (self.dir / "nginx.conf").write_text(f"""
user root;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/log/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {self.dir}/log/nginx-access.log;
    client_body_temp_path {self.dir}/nginx-body;
    proxy_temp_path {self.dir}/nginx-proxy;
    fastcgi_temp_path {self.dir}/nginx-fastcgi;
    uwsgi_temp_path {self.dir}/nginx-uwsgi;
    scgi_temp_path {self.dir}/nginx-scgi;
    include {self.dir}/site.conf;
}}
""")

    # the programs

    def nginx_test(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            [NGINX, "-t", "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def start(self):
        self.nginx = subprocess.Popen(
            [NGINX, "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # -n: in the foreground, so that this test holds its PID; otherwise as the README starts it
        self.supervisord = subprocess.Popen(
            [str(BIN / "supervisord"), "-n", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            if (self.dir / "chip-supervisor.sock").exists() and (self.dir / "nginx.pid").exists():
                return
            time.sleep(0.05)
        raise AssertionError("supervisord or nginx did not start: " + self.nginx_log())

    def ctl(self, *args) -> str:
        return subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(self.conf), *args], capture_output=True, text=True, timeout=60
        ).stdout

    def pids(self) -> dict:
        """program name -> (state, pid) as supervisorctl status shows them."""
        states = {}
        for line in self.ctl("status").splitlines():
            fields = line.split()
            pid = re.search(r"pid (\d+)", line)
            states[fields[0]] = (fields[1], int(pid.group(1)) if pid else None)
        return states

    def rolling_restart(self) -> subprocess.CompletedProcess:
        restart = f"{BIN / 'supervisorctl'} -c {self.conf} restart chip:chip-{{port}}"
        return subprocess.run(
            [
                sys.executable,
                str(ROOT / "deploy" / "rolling-restart"),
                "--restart",
                restart,
                "--timeout",
                "30",
                *map(str, self.ports),
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )

    def logrotate(self) -> subprocess.CompletedProcess:
        """deploy/logrotate/chip, forced, with a state file of its own."""
        conf = self.dir / "logrotate.conf"
        conf.write_text(self._rewrite((ROOT / "deploy" / "logrotate" / "chip").read_text()))
        return subprocess.run(
            ["logrotate", "--force", "--state", str(self.dir / "logrotate.state"), str(conf)],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def nginx_log(self) -> str:
        path = self.dir / "log" / "nginx-error.log"
        return path.read_text() if path.exists() else ""

    def chip_log(self, port: int, suffix: str = "") -> str:
        return (self.dir / "log" / f"chip-{port}.log{suffix}").read_text()

    def stop(self):
        """End what this deployment started, by PID: supervisord (which stops chip with TERM), then
        any chip it left, then nginx."""
        chips = [pid for _, pid in self.pids().values() if pid] if self.supervisord else []
        for process in (self.supervisord, self.nginx):
            if process is None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr:
                process.stderr.close()
        for pid in chips:
            try:
                if "chip.py" in pathlib.Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
