#!/usr/bin/env python3
"""The probe of issue 15 against a node binary: N uploads of a 25 MiB file stall after
SENT MiB; prints the node's RSS before, while they stall, and what each connection got back.

    scripts/stalled-uploads.py <voiceflow-node binary> [uploads=16] [sent_mib=20] [watch_s=70]
"""
import json, os, re, socket, subprocess, sys, tempfile, threading, time, urllib.request

binary = sys.argv[1]
uploads = int(sys.argv[2]) if len(sys.argv) > 2 else 16
sent_mib = int(sys.argv[3]) if len(sys.argv) > 3 else 20
watch = int(sys.argv[4]) if len(sys.argv) > 4 else 70
MIB = 1024 * 1024

def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) // 1024

with tempfile.TemporaryDirectory() as tmp:
    config = os.path.join(tmp, "node.toml")
    with open(config, "w") as f:
        # The defaults of [files], but enough upload slots for one user's N uploads (the
        # probe used one user; the default cap of 4 would refuse the 5th with 429).
        f.write("password_hash_memory_kib = 1024\npassword_hash_iterations = 1\n"
                "limits.rate_limits = false\n"
                f"[files]\nmax_concurrent_per_user = {uploads}\n")
    # The old binary does not know max_concurrent_per_user: retry without the table.
    def start(cfg_text=None):
        if cfg_text is not None:
            with open(config, "w") as f:
                f.write(cfg_text)
        p = subprocess.Popen([binary, "--config", config, "--listen", "127.0.0.1:0",
                              "--data-dir", os.path.join(tmp, "data")],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in p.stdout:
            if line.startswith("VOICEFLOW_LISTENING "):
                return p, line.split()[1]
        return p, None
    node, addr = start()
    if addr is None:
        node, addr = start("password_hash_memory_kib = 1024\npassword_hash_iterations = 1\n"
                           "limits.rate_limits = false\n")
    threading.Thread(target=lambda: [None for _ in node.stdout], daemon=True).start()
    host, port = addr.rsplit(":", 1)

    def call(method, path, body, token=None):
        req = urllib.request.Request(f"http://{addr}{path}", method=method,
                                     data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        if token:
            req.add_header("authorization", f"Bearer {token}")
        return json.load(urllib.request.urlopen(req))

    user = call("POST", "/api/v1/auth/register", {"username": "prober", "email": "p@example.com",
                "password": "password123", "confirmPassword": "password123"})["data"]
    token = user["token"]
    room = call("POST", "/api/v1/rooms", {"name": "probe"}, token)["data"]["id"]
    before = rss(node.pid)
    answers = []
    socks = []
    chunk = b"\x5a" * (256 * 1024)
    start_t = time.time()
    for _ in range(uploads):
        s = socket.create_connection((host, int(port)))
        s.sendall((f"POST /api/v1/files?roomId={room}&name=big.bin HTTP/1.1\r\nHost: {addr}\r\n"
                   f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
                   f"Content-Length: {25 * MIB}\r\n\r\n").encode())
        for _ in range(sent_mib * MIB // len(chunk)):
            s.sendall(chunk)
        socks.append(s)
    def reader(s):
        s.settimeout(watch + 30)
        try:
            data = s.recv(4096)
            answers.append((round(time.time() - start_t, 1), data.split(b"\r\n", 1)[0].decode()))
        except Exception as e:
            answers.append((round(time.time() - start_t, 1), f"no answer ({e.__class__.__name__})"))
    for s in socks:
        threading.Thread(target=reader, args=(s,), daemon=True).start()
    print(f"RSS before: {before} MiB")
    peak = 0
    for t in range(watch):
        time.sleep(1)
        r = rss(node.pid)
        peak = max(peak, r)
        if t in (2, 5, 10, 20, 30, 45, 60) or t == watch - 1:
            print(f"t={t + 1:>3}s RSS {r} MiB, answered {len(answers)}/{uploads}")
    print(f"peak RSS while {uploads} uploads stalled after {sent_mib} MiB: {peak} MiB "
          f"(+{peak - before} MiB)")
    for when, what in sorted(answers)[:3]:
        print(f"  answer after {when}s: {what}")
    node.kill()
