#!/usr/bin/env python3
"""Writes the seed corpus of rtp_rtcp_fuzz (run from this directory): single RTP and RTCP
packets, a telephone-event payload, and packet sequences in the fuzzer's [len][packet] form."""
import struct


def rtp(seq, ts, pt=0, marker=False, payload=b"\xff" * 160, ssrc=0x1234, csrc=(), ext=None, pad=0):
    b0 = 0x80 | (0x20 if pad else 0) | (0x10 if ext is not None else 0) | len(csrc)
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrc)
    if ext is not None:
        out += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    out += payload
    if pad:
        out += b"\x00" * (pad - 1) + bytes([pad])
    return out


def rr(ssrc, blocks):
    body = struct.pack("!I", ssrc)
    for (src, frac, lost, ext, jit, lsr, dlsr) in blocks:
        body += struct.pack("!IB", src, frac) + (lost & 0xFFFFFF).to_bytes(3, "big") + struct.pack("!IIII", ext, jit, lsr, dlsr)
    return struct.pack("!BBH", 0x80 | len(blocks), 201, (len(body) + 4) // 4 - 1) + body


def sr(ssrc, ntp, rtp_ts, packets, octets, blocks):
    inner = rr(ssrc, blocks)[8:]
    body = struct.pack("!IQIII", ssrc, ntp, rtp_ts, packets, octets) + inner
    return struct.pack("!BBH", 0x80 | len(blocks), 200, (len(body) + 4) // 4 - 1) + body


def sdes(ssrc, cname):
    chunk = struct.pack("!IBB", ssrc, 1, len(cname)) + cname + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return struct.pack("!BBH", 0x81, 202, (len(chunk) + 4) // 4 - 1) + chunk


def bye(ssrc):
    return struct.pack("!BBHI", 0x81, 203, 1, ssrc)


def seq_file(packets):
    return b"".join(bytes([len(p)]) + p for p in packets)


seeds = {
    "rtp_pcmu": rtp(1, 160, marker=True),
    "rtp_csrc_ext_pad": rtp(7, 960, pt=111, csrc=(1, 2), ext=b"\x10\xaa\x00\x00", payload=b"\x01\x02\x03", pad=3),
    "rtcp_sr_sdes": sr(0x1234, 0xE1A2B3C4D5E6F708, 16000, 100, 16000,
                       [(0x5678, 12, 3, 70000, 40, 0x12345678, 65536)]) + sdes(0x1234, b"medius@worker"),
    "rtcp_rr_bye": rr(0x1111, [(0x2222, 64, -3, 0x1FFF0, 80, 0x12345678, 0x18000)]) + bye(0x1111),
    "dtmf_event": bytes([5, 0x8A, 0x03, 0x20]),
    "seq_reorder_loss": seq_file([rtp(s, 160 * s, payload=b"\xd5" * 40) for s in (65533, 65534, 0, 65535, 2, 3, 3)]),
    "seq_dtmf_rtcp": seq_file([rtp(10, 1600, pt=101, marker=True, payload=bytes([1, 10, 0, 160]))]
                              + [rtp(11, 1600, pt=101, payload=bytes([1, 0x8A, 3, 32]))] * 3
                              + [rr(0x1111, [(0x1234, 0, 0, 11, 5, 0x1000, 0x100)])]),
}
for name, data in seeds.items():
    with open(name, "wb") as f:
        f.write(data)
