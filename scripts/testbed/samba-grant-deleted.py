#!/usr/bin/python3
"""Lets the connector's service account read deleted objects (tombstones).

usage: samba-grant-deleted.py SMB_CONF SAM_LDB BASE_DN SERVICE_DN

Adds (A;CI;LCRP;;;<service SID>) to the security descriptor of
CN=Deleted Objects,BASE_DN: List Contents and Read Property, inherited by
the tombstones. It is what an AD administrator grants with
  dsacls "CN=Deleted Objects,DC=..." /takeownership
  dsacls "CN=Deleted Objects,DC=..." /G DOMAIN\\svc:LCRP
so that directory.Client.Departures sees deletions incrementally (without
it, every run is a full scan). Idempotent; works on a running or stopped DC.
"""
import sys

import ldb
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

conf, url, base, svc = sys.argv[1:5]
lp = LoadParm()
lp.load(conf)
db = SamDB(url=url, session_info=system_session(), lp=lp)
sid = ndr_unpack(security.dom_sid, db.search(base=svc, scope=ldb.SCOPE_BASE, attrs=["objectSid"])[0]["objectSid"][0])
dn = "CN=Deleted Objects," + base
res = db.search(base=dn, scope=ldb.SCOPE_BASE, attrs=["nTSecurityDescriptor"], controls=["show_deleted:1"])
sddl = ndr_unpack(security.descriptor, res[0]["nTSecurityDescriptor"][0]).as_sddl()
ace = "(A;CI;LCRP;;;%s)" % sid
if ace not in sddl:
    sddl = sddl.replace("S:", ace + "S:", 1) if "S:" in sddl else sddl + ace
    m = ldb.Message()
    m.dn = ldb.Dn(db, dn)
    m["nTSecurityDescriptor"] = ldb.MessageElement(
        ndr_pack(security.descriptor.from_sddl(sddl, security.dom_sid(db.get_domain_sid()))),
        ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor")
    db.modify(m, controls=["show_deleted:1"])
print("deleted objects readable by", svc)
