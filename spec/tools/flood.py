"""Shared by the flood tools (pipeline_flood.py, ws_flood.py, slow_reader.py):
a process's RSS, a plain GET, sending without reading until the peer stops
taking, and WebSocket frames read back."""
import select
import struct
import time
import urllib.request


def rss_kib(pid):
    """VmRSS of pid in KiB (0 once it is gone, or without a pid)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, TypeError):
        pass
    return 0


def get(port, path):
    """(status, body) of GET path on 127.0.0.1:port."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, r.read().decode()
    except Exception as e:
        return getattr(e, "code", None), ""


def send_without_reading(sock, unit, count, pid=None, stall=2.0, deadline=120.0):
    """Sends count copies of unit on a connected socket, never reading, until
    all are sent or the socket took nothing for stall seconds. Returns
    (units the socket took whole, whether it stalled, peak RSS of pid)."""
    sock.setblocking(False)
    batch = max(1, (1 << 20) // len(unit))
    sent, stalled, peak = 0, False, rss_kib(pid)
    pending, last = b"", time.time()
    end = time.time() + deadline
    while (sent < count or pending) and time.time() < end:
        if not pending:
            k = min(batch, count - sent)
            pending = unit * k
            sent += k
        try:
            pending = pending[sock.send(pending):]
            last = time.time()
        except BlockingIOError:
            if time.time() - last > stall:
                stalled = True
                break
            select.select([], [sock], [], 0.05)
        except OSError:
            break
        peak = max(peak, rss_kib(pid))
    sent -= (len(pending) + len(unit) - 1) // len(unit)
    return sent, stalled, max(peak, rss_kib(pid))


def ws_frames(buf):
    """The whole WebSocket frames (unmasked, as a server sends) at the start
    of buf as (opcode, payload) pairs, up to and with a close frame, and the
    bytes after them."""
    frames, off = [], 0
    while len(buf) - off >= 2:
        n, hl = buf[off + 1] & 0x7F, 2
        if n == 126:
            if len(buf) - off < 4:
                break
            n, hl = struct.unpack_from("!H", buf, off + 2)[0], 4
        elif n == 127:
            if len(buf) - off < 10:
                break
            n, hl = struct.unpack_from("!Q", buf, off + 2)[0], 10
        if len(buf) - off < hl + n:
            break
        frames.append((buf[off] & 0x0F, buf[off + hl:off + hl + n]))
        off += hl + n
        if frames[-1][0] == 0x8:
            break
    return frames, buf[off:]


def close_code(payload):
    """The status code of a close frame's payload (1005: none given)."""
    return struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
