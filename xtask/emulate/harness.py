"""Runs one x64 release minifilter (.sys) in Speakeasy and prints one tab-separated report line.

Usage: harness.py DRIVER.sys EXPECTED_VERSION (the FLT_REGISTRATION_VERSION_* the source names).

A check of the binary, not a second fltsim: each Filter Manager import the load and unload
paths reach is hooked with the simplest behaviour (success with a fake object, or a documented
failure status), and acquire/release pairs are counted.

Layouts read and written here are LAYOUT's (below): fltKernel.h's and wdm.h's x64 offsets,
checked against windows-sys by xtask's unit test. The operation table ends at
IRP_MJ_OPERATION_END (0x80), the context table at FLT_CONTEXT_END (0xffff).
"""
import struct
import sys

import speakeasy

# x64 offsets and sizes of the C structures the harness reads and writes (fltKernel.h for the
# FLT_* structures, wdm.h for FILE_OBJECT, UNICODE_STRING, OBJECT_ATTRIBUTES and
# KEY_VALUE_PARTIAL_INFORMATION). Not hand-trusted: xtask's unit test `layout_matches_windows_sys`
# parses this table and compares every entry with `core::mem::offset_of!`/`size_of` on
# windows-sys's definitions. One `"TYPE.FIELD": 0xNN,` (or `"sizeof TYPE"`) per line.
LAYOUT = {
    "FLT_REGISTRATION.Size": 0x00,
    "FLT_REGISTRATION.Version": 0x02,
    "FLT_REGISTRATION.Flags": 0x04,
    "FLT_REGISTRATION.ContextRegistration": 0x08,
    "FLT_REGISTRATION.OperationRegistration": 0x10,
    "FLT_REGISTRATION.FilterUnloadCallback": 0x18,
    "FLT_REGISTRATION.SectionNotificationCallback": 0x68,
    "sizeof FLT_REGISTRATION": 0x70,
    "FLT_OPERATION_REGISTRATION.MajorFunction": 0x00,
    "FLT_OPERATION_REGISTRATION.Flags": 0x04,
    "FLT_OPERATION_REGISTRATION.PreOperation": 0x08,
    "FLT_OPERATION_REGISTRATION.PostOperation": 0x10,
    "sizeof FLT_OPERATION_REGISTRATION": 0x20,
    "FLT_CONTEXT_REGISTRATION.ContextType": 0x00,
    "sizeof FLT_CONTEXT_REGISTRATION": 0x38,
    "FLT_CALLBACK_DATA.Flags": 0x00,
    "FLT_CALLBACK_DATA.Thread": 0x08,
    "FLT_CALLBACK_DATA.Iopb": 0x10,
    "FLT_CALLBACK_DATA.IoStatus": 0x18,
    "FLT_IO_PARAMETER_BLOCK.IrpFlags": 0x00,
    "FLT_IO_PARAMETER_BLOCK.MajorFunction": 0x04,
    "FLT_IO_PARAMETER_BLOCK.MinorFunction": 0x05,
    "FLT_IO_PARAMETER_BLOCK.OperationFlags": 0x06,
    "FLT_IO_PARAMETER_BLOCK.TargetFileObject": 0x08,
    "FLT_IO_PARAMETER_BLOCK.TargetInstance": 0x10,
    "FLT_IO_PARAMETER_BLOCK.Parameters": 0x18,
    "FLT_RELATED_OBJECTS.Size": 0x00,
    "FLT_RELATED_OBJECTS.Filter": 0x08,
    "FLT_RELATED_OBJECTS.Volume": 0x10,
    "FLT_RELATED_OBJECTS.Instance": 0x18,
    "FLT_RELATED_OBJECTS.FileObject": 0x20,
    "sizeof FLT_RELATED_OBJECTS": 0x30,
    "FILE_OBJECT.FileName": 0x58,
    "UNICODE_STRING.Length": 0x00,
    "UNICODE_STRING.MaximumLength": 0x02,
    "UNICODE_STRING.Buffer": 0x08,
    "OBJECT_ATTRIBUTES.RootDirectory": 0x08,
    "OBJECT_ATTRIBUTES.ObjectName": 0x10,
    "KEY_VALUE_PARTIAL_INFORMATION.Type": 0x04,
    "KEY_VALUE_PARTIAL_INFORMATION.DataLength": 0x08,
    "KEY_VALUE_PARTIAL_INFORMATION.Data": 0x0C,
}

STATUS_SUCCESS = 0
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_BUFFER_OVERFLOW = 0x80000005
KEY_VALUE_PARTIAL_INFORMATION = 2  # KEY_VALUE_INFORMATION_CLASS: KeyValuePartialInformation
REG_SZ = 1
# The DemoFolder value of the keyed load.
DEMO_FOLDER = "emulate-demo"
FAKE_KEY = 0x6E00
IRP_MJ_OPERATION_END = 0x80
FLT_CONTEXT_END = 0xFFFF
# The handles are opaque to the driver: any unique value serves.
FAKE_FILTER = 0xFF00_0000_0000_F117

PAIRS = {
    # export: (pair name, +1 acquire / -1 release)
    "FltAllocateContext": ("context", 1), "FltReferenceContext": ("context", 1),
    "FltGetInstanceContext": ("context", 1), "FltGetStreamHandleContext": ("context", 1),
    "FltGetSectionContext": ("context", 1), "FltReleaseContext": ("context", -1),
    "ExAllocatePool2": ("pool", 1), "ExFreePoolWithTag": ("pool", -1),
    "FltRegisterFilter": ("filter", 1), "FltUnregisterFilter": ("filter", -1),
    "FltGetFileNameInformation": ("name", 1), "FltReleaseFileNameInformation": ("name", -1),
    "FltObjectReference": ("object", 1), "FltObjectDereference": ("object", -1),
    "FltInitializePushLock": ("pushlock", 1), "FltDeletePushLock": ("pushlock", -1),
    "ObReferenceObjectByHandle": ("object", 1), "ObfReferenceObject": ("object", 1),
    "ObfDereferenceObject": ("object", -1), "ObDereferenceObjectDeferDelete": ("object", -1),
    "PsCreateSystemThread": ("handle", 1), "ObCloseHandle": ("handle", -1),
    "ZwClose": ("handle", -1), "ZwOpenKey": ("handle", 1),
}
FAKE_THREAD_HANDLE = 0x7A1C
FAKE_THREAD = 0xFF00_0000_0000_7A1D


def main(path, expected_version):
    try:
        data = open(path, "rb").read()
    except OSError as err:
        return fail(f"cannot read: {err}")
    if len(data) < 0x40 or data[:2] != b"MZ":
        return fail("not a PE image (no MZ header)")
    try:
        # Two loads, each in a fresh emulator: with no Parameters key (the driver's defaults
        # apply), then with Parameters\DemoFolder set, which the driver must read.
        bare = emulate(path, None)
        out = emulate(path, DEMO_FOLDER, callbacks=True)
    except Exception as err:  # speakeasy raises plain exceptions for bad images
        return fail(f"speakeasy cannot load it: {err}")
    extra = [f"no Parameters key: {p}" for p in entry_problems(bare["driver_entry"])]
    extra += registry_problems(out["registry"])
    return verdict(out, expected_version, extra)


def emulate(path, folder, callbacks=False):
    """One load, DriverEntry and unload; `folder` is Parameters\\DemoFolder (None: no key)."""
    out = {"file": path, "calls": {}, "balance": {}, "registry": {"opened": [], "queried": []}}
    se = speakeasy.Speakeasy()
    module = se.load_module(path)
    reg = {}

    def count(name, rv):
        out["calls"][name] = out["calls"].get(name, 0) + 1
        pair, delta = PAIRS.get(name, (None, 0))
        if pair and delta:
            out["balance"][pair] = out["balance"].get(pair, 0) + delta
        return rv

    def read(addr, n):
        return bytes(se.mem_read(addr, n))

    def u16(addr):
        return struct.unpack("<H", read(addr, 2))[0]

    def u32(addr):
        return struct.unpack("<I", read(addr, 4))[0]

    def u64(addr):
        return struct.unpack("<Q", read(addr, 8))[0]

    def flt_register_filter(emu, api, func, argv):
        driver, registration, ret = argv[:3]
        r = "FLT_REGISTRATION."
        size = u16(registration + LAYOUT[r + "Size"])
        version = u16(registration + LAYOUT[r + "Version"])
        flags = u32(registration + LAYOUT[r + "Flags"])
        ctx = u64(registration + LAYOUT[r + "ContextRegistration"])
        ops = u64(registration + LAYOUT[r + "OperationRegistration"])
        unload = u64(registration + LAYOUT[r + "FilterUnloadCallback"])
        section = (u64(registration + LAYOUT[r + "SectionNotificationCallback"])
                   if version >= 0x0203 else 0)
        majors = []
        while ops and len(majors) < 64:
            o = "FLT_OPERATION_REGISTRATION."
            major = read(ops + LAYOUT[o + "MajorFunction"], 1)[0]
            if major == IRP_MJ_OPERATION_END:
                break
            pre, post = u64(ops + LAYOUT[o + "PreOperation"]), u64(ops + LAYOUT[o + "PostOperation"])
            majors.append({"major": major, "pre": bool(pre), "post": bool(post),
                           "pre_addr": pre, "post_addr": post})
            ops += LAYOUT["sizeof FLT_OPERATION_REGISTRATION"]
        contexts = []
        while ctx and len(contexts) < 16:
            ctype = u16(ctx + LAYOUT["FLT_CONTEXT_REGISTRATION.ContextType"])
            if ctype == FLT_CONTEXT_END:
                break
            contexts.append(ctype)
            ctx += LAYOUT["sizeof FLT_CONTEXT_REGISTRATION"]
        reg.update(size=size, version=version, flags=flags, operations=majors,
                   contexts=contexts, section_callback=bool(section), unload=unload)
        se.mem_write(ret, struct.pack("<Q", FAKE_FILTER))
        return count("FltRegisterFilter", STATUS_SUCCESS)

    def simple(rv):
        return lambda emu, api, func, argv: count(api.split(".")[-1], rv)

    se.add_api_hook(flt_register_filter, "*", "FltRegisterFilter", argc=3)
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "FltStartFiltering", argc=1)
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "FltUnregisterFilter", argc=1)
    def unicode_string(addr):
        length = u16(addr + LAYOUT["UNICODE_STRING.Length"])
        buffer = u64(addr + LAYOUT["UNICODE_STRING.Buffer"])
        return read(buffer, length).decode("utf-16-le", "replace") if length else ""

    def zw_open_key(emu, api, func, argv):
        handle_out, _access, attributes = argv[:3]
        root = u64(attributes + LAYOUT["OBJECT_ATTRIBUTES.RootDirectory"])
        name = u64(attributes + LAYOUT["OBJECT_ATTRIBUTES.ObjectName"])
        text = unicode_string(name) if name else ""
        out["registry"]["opened"].append((root, text))
        if folder is None:
            # The documented status of a missing key; the driver's defaults apply.
            return count("ZwOpenKey-missing", STATUS_OBJECT_NAME_NOT_FOUND)
        handle = FAKE_KEY + len(out["registry"]["opened"])
        se.mem_write(handle_out, struct.pack("<Q", handle))
        return count("ZwOpenKey", STATUS_SUCCESS)

    def zw_query_value_key(emu, api, func, argv):
        key, name, klass, info, length, result = argv[:6]
        text = unicode_string(name)
        out["registry"]["queried"].append((key, text, klass))
        data = (folder + "\0").encode("utf-16-le")
        k = "KEY_VALUE_PARTIAL_INFORMATION."
        need = LAYOUT[k + "Data"] + len(data)
        se.mem_write(result, struct.pack("<I", need))
        if klass != KEY_VALUE_PARTIAL_INFORMATION or text != "DemoFolder":
            return count("ZwQueryValueKey", STATUS_OBJECT_NAME_NOT_FOUND)
        if length < need:
            return count("ZwQueryValueKey", STATUS_BUFFER_OVERFLOW)
        se.mem_write(info + LAYOUT[k + "Type"], struct.pack("<I", REG_SZ))
        se.mem_write(info + LAYOUT[k + "DataLength"], struct.pack("<I", len(data)))
        se.mem_write(info + LAYOUT[k + "Data"], data)
        return count("ZwQueryValueKey", STATUS_SUCCESS)

    se.add_api_hook(zw_open_key, "*", "ZwOpenKey", argc=3)
    se.add_api_hook(zw_query_value_key, "*", "ZwQueryValueKey", argc=6)
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "ZwClose", argc=1)
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "FltRegisterForDataScan", argc=1)
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "FltInitializePushLock", argc=1)
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "FltDeletePushLock", argc=1)
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "ExInitializeRundownProtection", argc=1)
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "ExWaitForRundownProtectionRelease", argc=1)

    def out_ptr(value, index, rv=STATUS_SUCCESS):
        # Writes a fake handle or object through the call's out-pointer argument.
        def hook(emu, api, func, argv):
            se.mem_write(argv[index], struct.pack("<Q", value))
            return count(api.split(".")[-1], rv)
        return hook

    # The scan thread is not run (Speakeasy would start it only after DriverEntry's run, and its
    # KeWaitForSingleObject returns at once, so a worker loop spins): a fake handle and object.
    se.add_api_hook(out_ptr(FAKE_THREAD_HANDLE, 0), "*", "PsCreateSystemThread", argc=7)
    se.add_api_hook(out_ptr(FAKE_THREAD, 4), "*", "ObReferenceObjectByHandle", argc=6)
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "ObCloseHandle", argc=2)
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "ObfDereferenceObject", argc=1)
    # Waits end at once with STATUS_SUCCESS (the object is signalled).
    se.add_api_hook(simple(STATUS_SUCCESS), "*", "KeWaitForSingleObject", argc=5)

    base, end = module.get_base(), module.get_base() + module.get_image_size()
    insns = {"n": 0}

    def on_code(emu, addr, size, ctx):
        if base <= addr < end:
            insns["n"] += 1
    se.add_code_hook(on_code)

    se.run_module(module)
    report = se.get_report()
    entry = (report.get("entry_points") or [{}])[0]
    out["driver_entry"] = {"ret": entry.get("ret_val"), "error": entry.get("error"),
                           "instructions": insns["n"]}
    out["registration"] = {k: v for k, v in reg.items() if k != "unload"}
    if folder is not None and callbacks:
        out["callbacks"] = run_callbacks(se, reg.get("operations", []), insns, out, folder)
    if reg.get("unload"):
        insns["n"] = 0
        se.call(reg["unload"], [0])
        out["unload"] = {"ret": se.reg_read("rax") & 0xFFFFFFFF, "instructions": insns["n"]}
    return out


# Documented returns: FLT_PREOP_CALLBACK_STATUS (SUCCESS_WITH_CALLBACK 0 .. DISALLOW_FSFILTER_IO
# 6) and FLT_POSTOP_CALLBACK_STATUS (FINISHED_PROCESSING 0, MORE_PROCESSING_REQUIRED 1,
# DISALLOW_FSFILTER_IO 2), fltKernel.h.
PREOP_STATUSES = range(0, 7)
POSTOP_STATUSES = range(0, 3)
FAKE_INSTANCE = 0xFF00_0000_0000_1257
FAKE_VOLUME = 0xFF00_0000_0000_F01E


def run_callbacks(se, operations, insns, out, folder):
    """Calls every registered pre- and post-operation callback once for a file outside the demo
    folder and once inside it, with FLT_CALLBACK_DATA, FLT_IO_PARAMETER_BLOCK,
    FLT_RELATED_OBJECTS and FILE_OBJECT built at LAYOUT's offsets. Returns one row per call."""
    rows = []
    for where, name in (("out", "\\Users\\u\\" + "a" * 51 + ".txt"),
                        ("in", f"\\Users\\u\\{folder}\\" + "b" * 38 + ".txt")):
        for op in operations:
            for kind in ("pre", "post"):
                addr = op[kind + "_addr"]
                if not addr:
                    continue
                mem = se.mem_alloc(0x1000)
                se.mem_write(mem, b"\0" * 0x1000)
                data, iopb, objs, fobj, text = mem, mem + 0x100, mem + 0x300, mem + 0x400, mem + 0x600
                se.mem_write(data + LAYOUT["FLT_CALLBACK_DATA.Iopb"], struct.pack("<Q", iopb))
                p = "FLT_IO_PARAMETER_BLOCK."
                se.mem_write(iopb + LAYOUT[p + "MajorFunction"], bytes([op["major"]]))
                se.mem_write(iopb + LAYOUT[p + "TargetFileObject"], struct.pack("<Q", fobj))
                se.mem_write(iopb + LAYOUT[p + "TargetInstance"], struct.pack("<Q", FAKE_INSTANCE))
                r = "FLT_RELATED_OBJECTS."
                se.mem_write(objs + LAYOUT[r + "Size"],
                             struct.pack("<H", LAYOUT["sizeof FLT_RELATED_OBJECTS"]))
                se.mem_write(objs + LAYOUT[r + "Filter"], struct.pack("<Q", FAKE_FILTER))
                se.mem_write(objs + LAYOUT[r + "Volume"], struct.pack("<Q", FAKE_VOLUME))
                se.mem_write(objs + LAYOUT[r + "Instance"], struct.pack("<Q", FAKE_INSTANCE))
                se.mem_write(objs + LAYOUT[r + "FileObject"], struct.pack("<Q", fobj))
                encoded = name.encode("utf-16-le")
                se.mem_write(text, encoded)
                u = fobj + LAYOUT["FILE_OBJECT.FileName"]
                se.mem_write(u + LAYOUT["UNICODE_STRING.Length"], struct.pack("<H", len(encoded)))
                se.mem_write(u + LAYOUT["UNICODE_STRING.MaximumLength"],
                             struct.pack("<H", len(encoded)))
                se.mem_write(u + LAYOUT["UNICODE_STRING.Buffer"], struct.pack("<Q", text))
                before = sum(out["calls"].values())
                insns["n"] = 0
                args = [data, objs, mem + 0x800] if kind == "pre" else [data, objs, 0, 0]
                try:
                    se.call(addr, args)
                    ret = se.reg_read("rax") & 0xFFFFFFFF
                    error = None
                except Exception as err:  # a fault in the callback
                    ret, error = None, str(err)
                allowed = PREOP_STATUSES if kind == "pre" else POSTOP_STATUSES
                verdict = ("ok" if error is None and ret in allowed
                           else f"FAIL {error or f'returned {ret:#x}'}")
                rows.append({"where": where, "major": op["major"], "kind": kind,
                             "instructions": insns["n"],
                             "calls": sum(out["calls"].values()) - before,
                             "ret": ret, "verdict": verdict})
    return rows


def entry_problems(entry):
    if entry["error"]:
        return [f"DriverEntry stopped: {entry['error'].get('type')} "
                f"{entry['error'].get('api_name', '')}".strip()]
    if int(entry["ret"], 16) & 0xFFFFFFFF != STATUS_SUCCESS:
        return [f"DriverEntry returned {entry['ret']}"]
    return []


def registry_problems(registry):
    """A driver that opens keys must open the service key, then Parameters under it, and query
    DemoFolder there once (common::scope's documented read); a driver that opens none is fine."""
    opened, queried = registry["opened"], registry["queried"]
    if not opened and not queried:
        return []
    problems = []
    if len(opened) != 2 or opened[0][0] != 0 or opened[1] != (FAKE_KEY + 1, "Parameters"):
        problems.append(f"keys opened {[name for _, name in opened]}, expected service, Parameters")
    if [(k, n) for k, n, _ in queried] != [(FAKE_KEY + 2, "DemoFolder")]:
        problems.append(f"values queried {[n for _, n, _ in queried]}, expected DemoFolder once")
    return problems


def verdict(out, expected_version, extra):
    """Checks the run and prints: verdict, DriverEntry status and instructions, registration
    version, operations, contexts, section callback, unload status and instructions, calls,
    problems. Returns the exit status (0 when every check passed)."""
    entry, reg, unload = out["driver_entry"], out["registration"], out.get("unload")
    problems = entry_problems(entry) + extra
    if not reg:
        problems.append("FltRegisterFilter not called")
    else:
        if expected_version < 0:
            pass  # a file given by path: no source to compare with
        elif reg["version"] != expected_version:
            problems.append(f"Version {reg['version']:#06x}, source says {expected_version:#06x}")
        # sizeof(FLT_REGISTRATION) in fltKernel.h for x64 (every version field present).
        if reg["size"] != LAYOUT["sizeof FLT_REGISTRATION"]:
            problems.append(f"Size {reg['size']:#x}, sizeof(FLT_REGISTRATION) is 0x70")
        if expected_version >= 0 and reg["section_callback"] != (expected_version >= 0x0203):
            problems.append("SectionNotificationCallback does not match the version")
    if unload is None:
        problems.append("no FilterUnloadCallback")
    elif unload["ret"] != STATUS_SUCCESS:
        problems.append(f"unload returned {unload['ret']:#x}")
    if out["calls"].get("FltUnregisterFilter", 0) != 1:
        problems.append(f"FltUnregisterFilter called {out['calls'].get('FltUnregisterFilter', 0)}x")
    for pair, n in sorted(out["balance"].items()):
        if n:
            problems.append(f"{pair} imbalance {n:+d}")
    ops = ",".join(f"{o['major']:#x}{'' if o['pre'] else '-'}{'+' if o['post'] else ''}"
                   for o in reg.get("operations", []))
    fields = [
        "ok" if not problems else "FAIL",
        entry["ret"], str(entry["instructions"]),
        f"{reg.get('version', 0):#06x}", ops or "-",
        ",".join(f"{c:#x}" for c in reg.get("contexts", [])) or "-",
        "yes" if reg.get("section_callback") else "no",
        f"{unload['ret']:#x}" if unload else "-", str(unload["instructions"]) if unload else "-",
        str(sum(out["calls"].values())),
        "; ".join(problems) or "-",
    ]
    for row in out.get("callbacks", []):
        ret = "-" if row["ret"] is None else f"{row['ret']:#x}"
        print("\t".join(["callback", row["where"], f"{row['major']:#x}", row["kind"],
                         str(row["instructions"]), str(row["calls"]), ret, row["verdict"]]))
    print("\t".join(fields))
    return 1 if problems else 0


def fail(why):
    print("ERROR\t" + why)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2], 0)))
