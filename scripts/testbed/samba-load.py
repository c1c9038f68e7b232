#!/usr/bin/python3
"""Loads an LDIF file straight into a stopped Samba DC's sam.ldb.

usage: samba-load.py SMB_CONF LDIF_FILE

Local ldb writes with the system session skip LDAP, so 2 000 users load in
seconds. Records are "changetype: add" or "changetype: modify"; everything
runs in one transaction.

Samba derives Kerberos keys from each new password (about 30 ms a user), so
for generated users (sAMAccountName userNNNNNN) the loader stores only the NT
hash, through Samba's bypass-password-hash control: LDAP simple binds check
the NT hash, so those passwords work for LDAP as if set normally. The
hand-made special users get their passwords the normal way, except a user
with an explicit old pwdLastSet (password expired), which only the bypass
lets us store.
"""
import re
import struct
import sys
import time

from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB
from samba import dsdb
import ldb


def md4(data):
    """MD4 (RFC 1320); hashlib lacks it under OpenSSL 3."""
    def f(x, y, z): return (x & y) | (~x & z)
    def g(x, y, z): return (x & y) | (x & z) | (y & z)
    def h(x, y, z): return x ^ y ^ z
    def rotl(v, s): v &= 0xffffffff; return ((v << s) | (v >> (32 - s))) & 0xffffffff
    msg = bytearray(data) + b"\x80"
    msg += b"\x00" * ((56 - len(msg) % 64) % 64)
    msg += struct.pack("<Q", (len(data) * 8) & 0xffffffffffffffff)
    a, b, c, d = 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in range(16):
            k, s = i, (3, 7, 11, 19)[i % 4]
            if i % 4 == 0: a = rotl(a + f(b, c, d) + x[k], s)
            elif i % 4 == 1: d = rotl(d + f(a, b, c) + x[k], s)
            elif i % 4 == 2: c = rotl(c + f(d, a, b) + x[k], s)
            else: b = rotl(b + f(c, d, a) + x[k], s)
        for i in range(16):
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            if i % 4 == 0: a = rotl(a + g(b, c, d) + x[k] + 0x5a827999, s)
            elif i % 4 == 1: d = rotl(d + g(a, b, c) + x[k] + 0x5a827999, s)
            elif i % 4 == 2: c = rotl(c + g(d, a, b) + x[k] + 0x5a827999, s)
            else: b = rotl(b + g(c, d, a) + x[k] + 0x5a827999, s)
        order = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
        for i in range(16):
            k, s = order[i], (3, 9, 11, 15)[i % 4]
            if i % 4 == 0: a = rotl(a + h(b, c, d) + x[k] + 0x6ed9eba1, s)
            elif i % 4 == 1: d = rotl(d + h(a, b, c) + x[k] + 0x6ed9eba1, s)
            elif i % 4 == 2: c = rotl(c + h(d, a, b) + x[k] + 0x6ed9eba1, s)
            else: b = rotl(b + h(c, d, a) + x[k] + 0x6ed9eba1, s)
        a, b, c, d = (a + aa) & 0xffffffff, (b + bb) & 0xffffffff, (c + cc) & 0xffffffff, (d + dd) & 0xffffffff
    return struct.pack("<4I", a, b, c, d)


GENERATED = re.compile(r"^user[0-9]{6}$")


def main():
    conf, path = sys.argv[1], sys.argv[2]
    lp = LoadParm()
    lp.load(conf)
    samdb = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
    bypass = ["local_oid:%s:0" % dsdb.DSDB_CONTROL_BYPASS_PASSWORD_HASH_OID]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = time.time()
    n = 0
    samdb.transaction_start()
    try:
        for changetype, msg in samdb.parse_ldif(text):
            try:
                if changetype == ldb.CHANGETYPE_MODIFY:
                    samdb.modify(msg)
                elif "unicodePwd" in msg and (GENERATED.match(str(msg.get("sAMAccountName", ""))) or
                                              str(msg.get("pwdLastSet", "0")) not in ("0", "-1")):
                    # unicodePwd holds the quoted password in UTF-16LE; store its NT hash.
                    pw = msg["unicodePwd"][0]
                    msg["unicodePwd"] = ldb.MessageElement(md4(pw[2:-2]), ldb.FLAG_MOD_ADD, "unicodePwd")
                    # With the bypass, a given pwdLastSet is stored as is (an old
                    # one makes the password expired)...
                    samdb.add(msg, controls=bypass)
                    if "pwdLastSet" not in msg:
                        # ...and a missing one stays 0 ("must change"): set it to now.
                        m = ldb.Message(msg.dn)
                        m["pwdLastSet"] = ldb.MessageElement("-1", ldb.FLAG_MOD_REPLACE, "pwdLastSet")
                        samdb.modify(m)
                else:
                    samdb.add(msg)
            except ldb.LdbError as e:
                raise SystemExit("samba-load: %s: %s" % (msg.dn, e.args[1] if len(e.args) > 1 else e))
            n += 1
            if n % 500 == 0:
                print("samba-load: %d records, %.1fs" % (n, time.time() - start), flush=True)
    except BaseException:
        samdb.transaction_cancel()
        raise
    samdb.transaction_commit()
    print("samba-load: %d records in %.1fs" % (n, time.time() - start), flush=True)


if __name__ == "__main__":
    main()
