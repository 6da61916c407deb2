"""Runs one x64 release minifilter (.sys) in Speakeasy and prints one tab-separated report line.

Usage: harness.py DRIVER.sys EXPECTED_VERSION [eicar] (the FLT_REGISTRATION_VERSION_* the
source names; `eicar`: the driver must deny the open of the EICAR file inside the demo folder).

A check of the binary, not a second fltsim: each import the load, the unload and the operation
callbacks reach is hooked with its documented behaviour in the simplest form (success with a fake
object, a documented "not found", or a documented failure status where the real routine would
start work the emulator cannot model), and acquire/release pairs are counted, per callback too.
The keyed load plays one instance's life (run_load): InstanceSetup, the operation callbacks, a
section conflict, a detach and the teardown; data-scan sections are backed by buffers the harness
fills (file_contents). docs/emulate.md has the table of hooks and the page each rests on.

Layouts read and written here are LAYOUT's (below): fltKernel.h's and wdm.h's x64 offsets,
checked against windows-sys by xtask's unit test, as CONSTANTS' values are. The operation table
ends at IRP_MJ_OPERATION_END (0x80), the context table at FLT_CONTEXT_END (0xffff).
"""
import os
import struct
import sys
import types

import speakeasy

# x64 offsets and sizes of the C structures the harness reads and writes (fltKernel.h for the
# FLT_* structures, wdm.h for FILE_OBJECT, IO_SECURITY_CONTEXT, UNICODE_STRING,
# OBJECT_ATTRIBUTES and KEY_VALUE_PARTIAL_INFORMATION). Not hand-trusted: xtask's unit test
# `layout_matches_windows_sys` parses this table and compares every entry with
# `core::mem::offset_of!`/`size_of` on windows-sys's definitions. One `"TYPE.FIELD": 0xNN,` (or
# `"sizeof TYPE"`) per line.
LAYOUT = {
    "FLT_REGISTRATION.Size": 0x00,
    "FLT_REGISTRATION.Version": 0x02,
    "FLT_REGISTRATION.Flags": 0x04,
    "FLT_REGISTRATION.ContextRegistration": 0x08,
    "FLT_REGISTRATION.OperationRegistration": 0x10,
    "FLT_REGISTRATION.FilterUnloadCallback": 0x18,
    "FLT_REGISTRATION.InstanceSetupCallback": 0x20,
    "FLT_REGISTRATION.InstanceQueryTeardownCallback": 0x28,
    "FLT_REGISTRATION.InstanceTeardownStartCallback": 0x30,
    "FLT_REGISTRATION.InstanceTeardownCompleteCallback": 0x38,
    "FLT_REGISTRATION.SectionNotificationCallback": 0x68,
    "sizeof FLT_REGISTRATION": 0x70,
    "FLT_OPERATION_REGISTRATION.MajorFunction": 0x00,
    "FLT_OPERATION_REGISTRATION.Flags": 0x04,
    "FLT_OPERATION_REGISTRATION.PreOperation": 0x08,
    "FLT_OPERATION_REGISTRATION.PostOperation": 0x10,
    "sizeof FLT_OPERATION_REGISTRATION": 0x20,
    "FLT_CONTEXT_REGISTRATION.ContextType": 0x00,
    "FLT_CONTEXT_REGISTRATION.ContextCleanupCallback": 0x08,
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
    "FLT_PARAMETERS_0.SecurityContext": 0x00,
    "IO_SECURITY_CONTEXT.DesiredAccess": 0x10,
    "FLT_RELATED_OBJECTS.Size": 0x00,
    "FLT_RELATED_OBJECTS.Filter": 0x08,
    "FLT_RELATED_OBJECTS.Volume": 0x10,
    "FLT_RELATED_OBJECTS.Instance": 0x18,
    "FLT_RELATED_OBJECTS.FileObject": 0x20,
    "sizeof FLT_RELATED_OBJECTS": 0x30,
    "FILE_OBJECT.ReadAccess": 0x4A,
    "FILE_OBJECT.SharedRead": 0x4D,
    "FILE_OBJECT.FileName": 0x58,
    "FLT_FILE_NAME_INFORMATION.Size": 0x00,
    "FLT_FILE_NAME_INFORMATION.Format": 0x04,
    "FLT_FILE_NAME_INFORMATION.Name": 0x08,
    "FLT_FILE_NAME_INFORMATION.Volume": 0x18,
    "sizeof FLT_FILE_NAME_INFORMATION": 0x78,
    "UNICODE_STRING.Length": 0x00,
    "UNICODE_STRING.MaximumLength": 0x02,
    "UNICODE_STRING.Buffer": 0x08,
    "OBJECT_ATTRIBUTES.RootDirectory": 0x08,
    "OBJECT_ATTRIBUTES.ObjectName": 0x10,
    "KEY_VALUE_PARTIAL_INFORMATION.Type": 0x04,
    "KEY_VALUE_PARTIAL_INFORMATION.DataLength": 0x08,
    "KEY_VALUE_PARTIAL_INFORMATION.Data": 0x0C,
    "IO_STATUS_BLOCK.Information": 0x08,
    "FILE_STANDARD_INFORMATION.AllocationSize": 0x00,
    "FILE_STANDARD_INFORMATION.EndOfFile": 0x08,
    "FILE_STANDARD_INFORMATION.NumberOfLinks": 0x10,
    "FILE_STANDARD_INFORMATION.DeletePending": 0x14,
    "FILE_STANDARD_INFORMATION.Directory": 0x15,
    "sizeof FILE_STANDARD_INFORMATION": 0x18,
    "FILE_INTERNAL_INFORMATION.IndexNumber": 0x00,
    "sizeof FILE_INTERNAL_INFORMATION": 0x08,
}

# Parameters.QueryFileInformation at fltKernel.h's offsets: POINTER_ALIGNMENT puts
# FileInformationClass at 8 and InfoBuffer at 16, where windows-sys's FLT_PARAMETERS_5 has 4 and
# 8 (common/src/params.rs says why). Checked by xtask's `parameters_match_common_params` against
# the offsets common/src/params.rs asserts. One `"MEMBER.FIELD": 0xNN,` per line.
PARAMETERS = {
    "QueryFileInformation.Length": 0x00,
    "QueryFileInformation.FileInformationClass": 0x08,
    "QueryFileInformation.InfoBuffer": 0x10,
}

# The values the harness passes and returns, by their SDK/WDK names. Not hand-trusted either:
# xtask's unit test `constants_match_windows_sys` compares each with windows-sys's constant of
# the same name. One `"NAME": 0xNN,` per line.
CONSTANTS = {
    "STATUS_SUCCESS": 0x0,
    "STATUS_BUFFER_OVERFLOW": 0x80000005,
    "STATUS_OBJECT_NAME_NOT_FOUND": 0xC0000034,
    "STATUS_NOT_FOUND": 0xC0000225,
    "STATUS_INVALID_PARAMETER": 0xC000000D,
    "STATUS_FLT_CONTEXT_ALREADY_DEFINED": 0xC01C0002,
    "STATUS_FLT_INVALID_NAME_REQUEST": 0xC01C0005,
    "STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND": 0xC01C0016,
    "STATUS_FLT_CONTEXT_ALREADY_LINKED": 0xC01C001C,
    "KeyValuePartialInformation": 0x2,
    "DriverRegKeyParameters": 0x0,
    "REG_SZ": 0x1,
    "FILE_READ_DATA": 0x1,
    "IRP_MJ_CREATE": 0x0,
    "IRP_MJ_OPERATION_END": 0x80,
    "FLT_CONTEXT_END": 0xFFFF,
    "FLT_FILE_NAME_NORMALIZED": 0x1,
    "FLT_FILE_NAME_OPENED": 0x2,
    "FLT_SET_CONTEXT_KEEP_IF_EXISTS": 0x1,
    "FLT_PREOP_DISALLOW_FSFILTER_IO": 0x6,
    "FLT_POSTOP_DISALLOW_FSFILTER_IO": 0x2,
    "STATUS_END_OF_FILE": 0xC0000011,
    "STATUS_VIRUS_INFECTED": 0xC0000906,
    "FLT_SECTION_CONTEXT": 0x40,
    "FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT": 0x1,
    "FILE_DEVICE_DISK_FILE_SYSTEM": 0x8,
    "FLT_FSTYPE_NTFS": 0x2,
    "FLTFL_INSTANCE_TEARDOWN_MANUAL": 0x1,
    "FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD": 0x2,
    "MM_COPY_MEMORY_VIRTUAL": 0x2,
    "IRP_MJ_WRITE": 0x4,
    "IRP_NOCACHE": 0x1,
    "STATUS_PENDING": 0x103,
    "STATUS_INFO_LENGTH_MISMATCH": 0xC0000004,
    "IRP_MJ_QUERY_INFORMATION": 0x5,
    "FileStandardInformation": 0x5,
    "FileInternalInformation": 0x6,
    "FLT_PREOP_COMPLETE": 0x4,
    "FLT_PREOP_SUCCESS_NO_CALLBACK": 0x1,
    "STATUS_INSUFFICIENT_RESOURCES": 0xC000009A,
    "STATUS_FLT_DELETING_OBJECT": 0xC01C000B,
    "STATUS_NOT_SUPPORTED": 0xC00000BB,
    "STATUS_IN_PAGE_ERROR": 0xC0000006,
}
K = types.SimpleNamespace(**CONSTANTS)

# The DemoFolder value of the keyed load.
DEMO_FOLDER = "emulate-demo"
FAKE_KEY = 0x6E00
# The handles are opaque to the driver: any unique value serves.
FAKE_FILTER = 0xFF00_0000_0000_F117
FAKE_INSTANCE = 0xFF00_0000_0000_1257
FAKE_VOLUME = 0xFF00_0000_0000_F01E
FAKE_THREAD_HANDLE = 0x7A1C
FAKE_THREAD = 0xFF00_0000_0000_7A1D
# The volume's device name, in front of every name FltGetFileNameInformation returns: normalized
# and opened names both start with it (FLT_FILE_NAME_INFORMATION's page); the rest is the path
# the harness put in FileObject->FileName.
VOLUME = "\\Device\\HarddiskVolume3"
# FltAllocateContext "does not initialize the contents" of the block (its page): the harness
# fills it with this byte, so a driver that reads a field it never wrote reads garbage, not a
# lucky zero.
CONTEXT_FILL = 0xA5
FAKE_SECTION_HANDLE = 0x5EC0
# The process FltGetRequestorProcessId names (any nonzero ID serves).
REQUESTOR_PID = 0x1F4
PAGE = 0x1000
# What every file's section holds: FILE_SIZE bytes of plain text, two of data-scan's 64 KiB
# windows; inside the demo folder, the EICAR test file's 68 characters start EICAR_AT, so they
# cross the end of the first window (data-scan's windows overlap by 67 bytes for that).
FILE_SIZE = 70_000
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_AT = 0x10000 - 20
# The file ID FileInternalInformation answers (any nonzero number serves).
FILE_ID = 0x0001_0000_0000_0042

PAIRS = {
    # export: (pair name, +1 acquire / -1 release), counted only when the call succeeds
    "FltAllocateContext": ("context", 1), "FltReferenceContext": ("context", 1),
    "FltGetInstanceContext": ("context", 1), "FltGetStreamHandleContext": ("context", 1),
    "FltGetSectionContext": ("context", 1), "FltReleaseContext": ("context", -1),
    "ExAllocatePool2": ("pool", 1), "ExFreePoolWithTag": ("pool", -1),
    "FltRegisterFilter": ("filter", 1), "FltUnregisterFilter": ("filter", -1),
    "FltGetFileNameInformation": ("name", 1), "FltReleaseFileNameInformation": ("name", -1),
    "FltObjectReference": ("object", 1), "FltObjectDereference": ("object", -1),
    "FltInitializePushLock": ("pushlock", 1), "FltDeletePushLock": ("pushlock", -1),
    "FltAcquirePushLockExclusive": ("pushlock held", 1),
    "FltAcquirePushLockShared": ("pushlock held", 1), "FltReleasePushLock": ("pushlock held", -1),
    "ExAcquireRundownProtection": ("rundown", 1), "ExReleaseRundownProtection": ("rundown", -1),
    "ObReferenceObjectByHandle": ("object", 1), "ObfReferenceObject": ("object", 1),
    "ObfDereferenceObject": ("object", -1), "ObDereferenceObjectDeferDelete": ("object", -1),
    "PsCreateSystemThread": ("handle", 1), "ObCloseHandle": ("handle", -1),
    "FltCreateSectionForDataScan": ("section", 1), "FltCloseSectionForDataScan": ("section", -1),
    "MmMapViewInSystemSpaceEx": ("view", 1), "MmUnmapViewInSystemSpace": ("view", -1),
    "FltAllocateCallbackDataEx": ("callback data", 1), "FltFreeCallbackData": ("callback data", -1),
    "ZwClose": ("handle", -1), "ZwOpenKey": ("handle", 1),
    "IoOpenDriverRegistryKey": ("handle", 1),
}


# The fault sweep (sweep): each hooked export an operation callback may see fail, and how it
# fails, from its page (docs/emulate.md cites each): the status it returns (None: ExAllocatePool2's
# NULL; FALSE for ExAcquireRundownProtection), or for the two that send I/O, the status the request
# ends with in its IoStatus. A faulted call writes nothing through its out pointers and is not
# counted in any pair.
FAULTS = {
    "FltGetFileNameInformation": K.STATUS_INSUFFICIENT_RESOURCES,
    "FltAllocateContext": K.STATUS_INSUFFICIENT_RESOURCES,
    "FltGetInstanceContext": K.STATUS_NOT_FOUND,
    "FltGetStreamHandleContext": K.STATUS_NOT_FOUND,
    "FltGetSectionContext": K.STATUS_NOT_FOUND,
    "FltSetInstanceContext": K.STATUS_FLT_DELETING_OBJECT,
    "FltSetStreamHandleContext": K.STATUS_FLT_DELETING_OBJECT,
    "ExAllocatePool2": None,
    "ExAcquireRundownProtection": 0,
    "FltObjectReference": K.STATUS_FLT_DELETING_OBJECT,
    "FltGetEcpListFromCallbackData": K.STATUS_INVALID_PARAMETER,
    "FltIsDirectory": K.STATUS_NOT_SUPPORTED,
    "FltAllocateCallbackDataEx": K.STATUS_INSUFFICIENT_RESOURCES,
    "FltPerformSynchronousIo": K.STATUS_INSUFFICIENT_RESOURCES,
    "FltPerformAsynchronousIo": K.STATUS_INSUFFICIENT_RESOURCES,
    "FltCreateSectionForDataScan": K.STATUS_INSUFFICIENT_RESOURCES,
    "MmMapViewInSystemSpaceEx": K.STATUS_INSUFFICIENT_RESOURCES,
    "MmCopyMemory": K.STATUS_IN_PAGE_ERROR,
}


def main(path, expected_version, expect_eicar):
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
        out = emulate(path, DEMO_FOLDER, callbacks=True, expect_eicar=expect_eicar)
        out["faults"] = out.get("faults", []) + routine_sweep(path, out)
    except Exception as err:  # speakeasy raises plain exceptions for bad images
        return fail(f"speakeasy cannot load it: {err}")
    bare_problems = entry_problems(bare["driver_entry"]) + bare["misuse"]
    extra = [f"no Parameters key: {p}" for p in bare_problems]
    extra += registry_problems(out["registry"], out["driver_object"])
    return verdict(out, expected_version, extra)


# Faults routine_sweep leaves out: FltGetInstanceContext's one documented failure is
# STATUS_NOT_FOUND, no context set; the context InstanceSetup set lasts until Filter Manager
# deletes the instance's contexts after InstanceTeardownComplete ("Deleting Contexts"), so the
# teardown callbacks always find it. (Failed there, section-conflict and section-context cannot
# reach the sections the context lists, and leave them open.)
NOT_IN_TEARDOWN = {(routine, "FltGetInstanceContext") for routine in
                   ("InstanceQueryTeardown", "InstanceTeardownStart", "InstanceTeardownComplete")}


def routine_sweep(path, out):
    """The fault sweep of the instance and section routines (InstanceSetup,
    SectionNotification, the teardown callbacks), each called once a load: for each export in
    FAULTS the routine called in `out`'s load and each of its calls n there, a fresh keyed load
    with that call failing in that routine (and no operation sweep). Everything that load checks
    counts for the fault: every row's reasons, every I/O a row fails that `out`'s row did not,
    and the load's end (every pair back at zero after teardown and unload, no misuse). The EICAR
    file may be opened there (a scan a fault stopped fails open)."""
    records = []
    clean_io = {(r["where"], r["major"], r["kind"]): r["failed_io"]
                for r in out.get("callbacks", []) if "failed_io" in r}
    for clean in [r for r in out.get("callbacks", []) if r["where"] == "-"]:
        for name in [n for n in FAULTS if clean["made"].get(n)
                     and (clean["major"], n) not in NOT_IN_TEARDOWN]:
            for n in range(1, clean["made"][name] + 1):
                run = emulate(path, DEMO_FOLDER, callbacks=True, arm=(clean["major"], name, n))
                rows = run.get("callbacks", [])
                hit = any(r["major"] == clean["major"] and r.get("fault_hit") for r in rows)
                reasons = []
                for r in rows:
                    label = r["major"] if r["where"] == "-" else f"{r['where']} {r['major']} {r['kind']}"
                    reasons += [f"{label}: {why}" for why in r["reasons"]]
                    key = (r["where"], r["major"], r["kind"])
                    if r.get("failed_io") and r["failed_io"] != clean_io.get(key):
                        reasons.append(f"{label}: {r['failed_io']}: the user's I/O fails")
                reasons += entry_problems(run["driver_entry"]) + end_problems(run)
                records.append({"where": "-", "major": clean["major"], "kind": "-",
                                "import": name, "n": n, "reasons": reasons if hit else None})
    return records


def emulate(path, folder, callbacks=False, expect_eicar=False, arm=None):
    """One load, DriverEntry and unload; `folder` is Parameters\\DemoFolder (None: no key).
    `arm`: (routine, export, n), the n-th call of the export fails in that instance or section
    routine (routine_sweep), and the operation callbacks are not swept."""
    out = {"file": path, "calls": {}, "balance": {}, "misuse": [], "log": [],
           "registry": {"opened": [], "queried": []}}
    se = speakeasy.Speakeasy()
    module = se.load_module(path)
    reg = {}
    # What Filter Manager and the kernel hold for the driver: contexts (address: type, the
    # driver's references, whether linked to an object), the links (kind and object: context),
    # contexts whose last reference went (their cleanup runs after the callback), pool blocks
    # (address: tag), name blocks, events (address: signalled).
    # Sections (section context: its stream, handle, object, contents, whether open), section
    # objects (object: section context), mapped views (base: size, object), the instances that
    # called FltRegisterForDataScan, the file objects whose open was cancelled.
    st = {"contexts": {}, "links": {}, "pending": [], "pool": {}, "names": set(), "events": {},
          "sections": {}, "objects": {}, "views": {}, "data_scan": set(), "cancelled": set(),
          "requests": {}, "completions": [], "fault": None, "arm": arm}

    def count(name, rv, ok=True):
        out["calls"][name] = out["calls"].get(name, 0) + 1
        pair, delta = PAIRS.get(name, (None, 0))
        if pair and ok:
            out["balance"][pair] = out["balance"].get(pair, 0) + delta
        return rv

    def misuse(why):
        out["misuse"].append(why)

    def read(addr, n):
        return bytes(se.mem_read(addr, n))

    def u16(addr):
        return struct.unpack("<H", read(addr, 2))[0]

    def u32(addr):
        return struct.unpack("<I", read(addr, 4))[0]

    def u64(addr):
        return struct.unpack("<Q", read(addr, 8))[0]

    def put(addr, fmt, value):
        se.mem_write(addr, struct.pack(fmt, value))

    def block(size, fill=0):
        addr = se.mem_alloc(max(size, 1))
        se.mem_write(addr, bytes([fill]) * size)
        return addr

    def export(api):
        return api.split(".")[-1]

    def flt_register_filter(emu, api, func, argv):
        driver, registration, ret = argv[:3]
        r = "FLT_REGISTRATION."
        size = u16(registration + LAYOUT[r + "Size"])
        version = u16(registration + LAYOUT[r + "Version"])
        flags = u32(registration + LAYOUT[r + "Flags"])
        ctx = u64(registration + LAYOUT[r + "ContextRegistration"])
        ops = u64(registration + LAYOUT[r + "OperationRegistration"])
        unload = u64(registration + LAYOUT[r + "FilterUnloadCallback"])
        instance = {name: u64(registration + LAYOUT[r + f"Instance{name}Callback"])
                    for name in ("Setup", "QueryTeardown", "TeardownStart", "TeardownComplete")}
        section = (u64(registration + LAYOUT[r + "SectionNotificationCallback"])
                   if version >= 0x0203 else 0)
        majors = []
        while ops and len(majors) < 64:
            o = "FLT_OPERATION_REGISTRATION."
            major = read(ops + LAYOUT[o + "MajorFunction"], 1)[0]
            if major == K.IRP_MJ_OPERATION_END:
                break
            pre, post = u64(ops + LAYOUT[o + "PreOperation"]), u64(ops + LAYOUT[o + "PostOperation"])
            majors.append({"major": major, "pre": bool(pre), "post": bool(post),
                           "pre_addr": pre, "post_addr": post})
            ops += LAYOUT["sizeof FLT_OPERATION_REGISTRATION"]
        contexts, cleanup = [], {}
        while ctx and len(contexts) < 16:
            c = "FLT_CONTEXT_REGISTRATION."
            ctype = u16(ctx + LAYOUT[c + "ContextType"])
            if ctype == K.FLT_CONTEXT_END:
                break
            contexts.append(ctype)
            cleanup[ctype] = u64(ctx + LAYOUT[c + "ContextCleanupCallback"])
            ctx += LAYOUT["sizeof FLT_CONTEXT_REGISTRATION"]
        reg.update(size=size, version=version, flags=flags, operations=majors,
                   contexts=contexts, section_callback=bool(section), unload=unload,
                   cleanup=cleanup, instance=instance, section_addr=section, driver=driver)
        put(ret, "<Q", FAKE_FILTER)
        return count("FltRegisterFilter", K.STATUS_SUCCESS)

    def fixed(rv, ok=True):
        """The export returns `rv` (None: VOID) and writes nothing."""
        return lambda emu, api, func, argv: count(export(api), rv, ok)

    def out_ptr(value, index, rv=K.STATUS_SUCCESS):
        """Writes a fake handle or object through the call's out-pointer argument."""
        def hook(emu, api, func, argv):
            put(argv[index], "<Q", value)
            return count(export(api), rv)
        return hook

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
            return count("ZwOpenKey", K.STATUS_OBJECT_NAME_NOT_FOUND, ok=False)
        handle = FAKE_KEY + len(out["registry"]["opened"])
        put(handle_out, "<Q", handle)
        return count("ZwOpenKey", K.STATUS_SUCCESS)

    def io_open_driver_registry_key(emu, api, func, argv):
        driver, key_type, _access, flags, handle_out = argv[:5]
        out["registry"]["opened"].append((driver, key_type, flags))
        if folder is None:
            # The status of a missing key (the page names none): the driver's defaults apply.
            return count("IoOpenDriverRegistryKey", K.STATUS_OBJECT_NAME_NOT_FOUND, ok=False)
        handle = FAKE_KEY + len(out["registry"]["opened"])
        put(handle_out, "<Q", handle)
        return count("IoOpenDriverRegistryKey", K.STATUS_SUCCESS)

    def zw_query_value_key(emu, api, func, argv):
        key, name, klass, info, length, result = argv[:6]
        text = unicode_string(name)
        out["registry"]["queried"].append((key, text, klass))
        data = (folder + "\0").encode("utf-16-le")
        k = "KEY_VALUE_PARTIAL_INFORMATION."
        need = LAYOUT[k + "Data"] + len(data)
        put(result, "<I", need)
        if klass != K.KeyValuePartialInformation or text != "DemoFolder":
            return count("ZwQueryValueKey", K.STATUS_OBJECT_NAME_NOT_FOUND)
        if length < need:
            return count("ZwQueryValueKey", K.STATUS_BUFFER_OVERFLOW)
        put(info + LAYOUT[k + "Type"], "<I", K.REG_SZ)
        put(info + LAYOUT[k + "DataLength"], "<I", len(data))
        se.mem_write(info + LAYOUT[k + "Data"], data)
        return count("ZwQueryValueKey", K.STATUS_SUCCESS)

    def ex_allocate_pool2(emu, api, func, argv):
        _flags, size, tag = argv[:3]
        if not tag or not size:
            # ExAllocatePool2 returns NULL for a zero tag (and its size must not be zero).
            misuse(f"ExAllocatePool2 of {size} bytes with tag {tag:#x}")
            return count("ExAllocatePool2", 0, ok=False)
        addr = block(size)  # zeroed, as ExAllocatePool2's memory is
        st["pool"][addr] = (tag & 0xFFFFFFFF, size)
        return count("ExAllocatePool2", addr)

    def ex_free_pool_with_tag(emu, api, func, argv):
        addr, tag = argv[0], argv[1] & 0xFFFFFFFF
        known, _ = st["pool"].pop(addr, (None, 0))
        if known is None:
            misuse(f"ExFreePoolWithTag({addr:#x}): not a block ExAllocatePool2 returned")
        elif known != tag:
            misuse(f"ExFreePoolWithTag({addr:#x}) with tag {tag:#x}, allocated with {known:#x}")
        else:
            se.mem_free(addr)
        return count("ExFreePoolWithTag", None, ok=known is not None)

    def flt_allocate_context(emu, api, func, argv):
        _filter, ctype, size, _pool_type, ret = argv[:5]
        ctype &= 0xFFFF
        if ctype not in reg.get("contexts", []):
            return count("FltAllocateContext", K.STATUS_FLT_CONTEXT_ALLOCATION_NOT_FOUND, ok=False)
        if not 0 < size <= 0xFFFF:
            return count("FltAllocateContext", K.STATUS_INVALID_PARAMETER, ok=False)
        addr = block(size, CONTEXT_FILL)
        st["contexts"][addr] = {"type": ctype, "refs": 1, "linked": False}
        put(ret, "<Q", addr)
        return count("FltAllocateContext", K.STATUS_SUCCESS)

    def held(api, addr):
        """The context at `addr` if the driver holds a reference to it; misuse otherwise."""
        context = st["contexts"].get(addr)
        if context is None or context["refs"] == 0:
            misuse(f"{export(api)}({addr:#x}): the driver holds no reference to that context")
            return None
        return context

    def flt_reference_context(emu, api, func, argv):
        context = held(api, argv[0])
        if context:
            context["refs"] += 1
        return count("FltReferenceContext", None, ok=context is not None)

    def flt_release_context(emu, api, func, argv):
        addr = argv[0]
        context = held(api, addr)
        if context:
            context["refs"] -= 1
            unreferenced(addr)
        return count("FltReleaseContext", None, ok=context is not None)

    def unreferenced(addr):
        """A context with no reference left, from the driver or a link: Filter Manager calls its
        type's cleanup callback, then frees it (run_callbacks does both once the callback has
        returned)."""
        context = st["contexts"][addr]
        if context["refs"] == 0 and not context["linked"]:
            st["pending"].append((reg["cleanup"].get(context["type"], 0), addr, context["type"]))
            del st["contexts"][addr]

    def get_context(kind, keys):
        """FltGet<kind>Context(object..., Context): the context linked there, referenced, or
        STATUS_NOT_FOUND (nothing was set there) and Context left alone."""
        def hook(emu, api, func, argv):
            addr = st["links"].get((kind, *argv[:keys]))
            if addr is None:
                return count(export(api), K.STATUS_NOT_FOUND, ok=False)
            st["contexts"][addr]["refs"] += 1
            put(argv[keys], "<Q", addr)
            return count(export(api), K.STATUS_SUCCESS)
        return hook

    def set_context(kind, keys):
        """FltSet<kind>Context(object..., Operation, NewContext, OldContext): links NewContext
        to the object; the link holds a reference of its own, the caller keeps its own."""
        def hook(emu, api, func, argv):
            key, (operation, new, old) = (kind, *argv[:keys]), argv[keys:keys + 3]
            context = held(api, new)
            if context is None:
                return count(export(api), K.STATUS_INVALID_PARAMETER)
            if old:
                misuse(f"{export(api)} with an OldContext pointer: the harness does not model it")
            if context["linked"]:
                return count(export(api), K.STATUS_FLT_CONTEXT_ALREADY_LINKED)
            if key in st["links"] and operation == K.FLT_SET_CONTEXT_KEEP_IF_EXISTS:
                return count(export(api), K.STATUS_FLT_CONTEXT_ALREADY_DEFINED)
            replaced = st["links"].get(key)
            st["links"][key] = new
            context["linked"] = True
            if replaced is not None:  # FLT_SET_CONTEXT_REPLACE_IF_EXISTS: the old link goes
                st["contexts"][replaced]["linked"] = False
                unreferenced(replaced)
            return count(export(api), K.STATUS_SUCCESS)
        return hook

    def flt_get_file_name_information(emu, api, func, argv):
        data, options, ret = argv[:3]
        name_format = options & 0xFF
        if name_format not in (K.FLT_FILE_NAME_NORMALIZED, K.FLT_FILE_NAME_OPENED):
            # The harness has no short (8.3) names.
            return count("FltGetFileNameInformation", K.STATUS_FLT_INVALID_NAME_REQUEST, ok=False)
        iopb = u64(data + LAYOUT["FLT_CALLBACK_DATA.Iopb"])
        file_object = u64(iopb + LAYOUT["FLT_IO_PARAMETER_BLOCK.TargetFileObject"])
        text = (VOLUME + unicode_string(file_object + LAYOUT["FILE_OBJECT.FileName"]))
        encoded, volume = text.encode("utf-16-le"), VOLUME.encode("utf-16-le")
        size = LAYOUT["sizeof FLT_FILE_NAME_INFORMATION"]
        info = block(size + len(encoded))
        se.mem_write(info + size, encoded)
        n = "FLT_FILE_NAME_INFORMATION."
        put(info + LAYOUT[n + "Size"], "<H", size)
        put(info + LAYOUT[n + "Format"], "<I", name_format)
        for field, length in (("Name", len(encoded)), ("Volume", len(volume))):
            u = info + LAYOUT[n + field]
            put(u + LAYOUT["UNICODE_STRING.Length"], "<H", length)
            put(u + LAYOUT["UNICODE_STRING.MaximumLength"], "<H", length)
            put(u + LAYOUT["UNICODE_STRING.Buffer"], "<Q", info + size)
        st["names"].add(info)
        put(ret, "<Q", info)
        return count("FltGetFileNameInformation", K.STATUS_SUCCESS)

    def flt_release_file_name_information(emu, api, func, argv):
        known = argv[0] in st["names"]
        if known:
            st["names"].discard(argv[0])
            se.mem_free(argv[0])
        else:
            misuse(f"FltReleaseFileNameInformation({argv[0]:#x}): not a name the driver holds")
        return count("FltReleaseFileNameInformation", None, ok=known)

    def flt_is_directory(emu, api, func, argv):
        se.mem_write(argv[2], b"\0")  # a file: IsDirectory is FALSE
        return count("FltIsDirectory", K.STATUS_SUCCESS)

    def ke_initialize_event(emu, api, func, argv):
        st["events"][argv[0]] = bool(argv[2] & 0xFF)
        return count("KeInitializeEvent", None)

    def ke_set_event(emu, api, func, argv):
        if argv[0] not in st["events"]:
            misuse(f"KeSetEvent({argv[0]:#x}): never initialized with KeInitializeEvent")
        previous = st["events"].get(argv[0], False)
        st["events"][argv[0]] = True
        return count("KeSetEvent", int(previous))  # the previous state: nonzero if signalled

    def dbg_print_ex(emu, api, func, argv):
        func(argv)  # Speakeasy's handler formats the line into argv[2]
        out["log"].append(str(argv[2]).rstrip("\n"))
        return count("DbgPrintEx", K.STATUS_SUCCESS)

    def bump(pair, delta):
        out["balance"][pair] = out["balance"].get(pair, 0) + delta

    def flt_register_for_data_scan(emu, api, func, argv):
        st["data_scan"].add(argv[0])
        return count("FltRegisterForDataScan", K.STATUS_SUCCESS)

    def flt_create_section_for_data_scan(emu, api, func, argv):
        instance, fobj, addr = argv[:3]
        handle_out, object_out, size_out = argv[9:12]
        name = "FltCreateSectionForDataScan"
        if instance not in st["data_scan"]:
            # The page: STATUS_INVALID_PARAMETER, "the minifilter is not registered" (for data
            # scan, FltRegisterForDataScan, which must come first).
            return count(name, K.STATUS_INVALID_PARAMETER, ok=False)
        context = held(api, addr)
        if context is None or context["type"] != K.FLT_SECTION_CONTEXT:
            misuse(f"{name}({addr:#x}): not a section context the driver holds")
            return count(name, K.STATUS_INVALID_PARAMETER, ok=False)
        key = ("section", instance, fobj)
        if key in st["links"]:
            return count(name, K.STATUS_FLT_CONTEXT_ALREADY_DEFINED, ok=False)
        data = file_contents(unicode_string(fobj + LAYOUT["FILE_OBJECT.FileName"]))
        if not data:
            return count(name, K.STATUS_END_OF_FILE, ok=False)
        handle = FAKE_SECTION_HANDLE + 4 * len(st["sections"])
        obj = block(0x40)  # the section object: opaque to the driver
        st["sections"][addr] = {"key": key, "handle": handle, "object": obj, "data": data,
                                "open": True, "dereferenced": False}
        st["objects"][obj] = addr
        st["links"][key] = addr
        context["linked"] = True
        put(handle_out, "<Q", handle)
        put(object_out, "<Q", obj)
        if size_out:
            put(size_out, "<q", len(data))
        bump("handle", 1)
        bump("object", 1)
        return count(name, K.STATUS_SUCCESS)

    def flt_close_section_for_data_scan(emu, api, func, argv):
        addr, name = argv[0], "FltCloseSectionForDataScan"
        section = st["sections"].get(addr)
        if section is None:
            # The page: STATUS_INVALID_PARAMETER, "the section context was not properly created".
            misuse(f"{name}({addr:#x}): no section was created with that context")
            return count(name, K.STATUS_INVALID_PARAMETER, ok=False)
        if not section["open"]:
            return count(name, K.STATUS_NOT_FOUND, ok=False)  # "already closed"
        section["open"] = False
        # "deallocate and remove a section context from a file object": the link goes.
        if st["links"].get(section["key"]) == addr:
            del st["links"][section["key"]]
            st["contexts"][addr]["linked"] = False
            unreferenced(addr)
        return count(name, K.STATUS_SUCCESS)

    def ob_dereference(emu, api, func, argv):
        section = st["sections"].get(st["objects"].get(argv[0]))
        if section is not None:
            if section["dereferenced"]:
                misuse(f"{export(api)}({argv[0]:#x}): the section object's reference is gone")
            section["dereferenced"] = True
        return count(export(api), 0 if export(api) == "ObfDereferenceObject" else None)

    def mm_map_view_in_system_space_ex(emu, api, func, argv):
        obj, base_out, size_io, offset_io = argv[:4]
        name = "MmMapViewInSystemSpaceEx"
        section = st["sections"].get(st["objects"].get(obj))
        if section is None or section["dereferenced"]:
            misuse(f"{name}({obj:#x}): not a section object the driver holds a reference to")
            return count(name, K.STATUS_INVALID_PARAMETER, ok=False)
        data, size = section["data"], u64(size_io)
        offset = struct.unpack("<q", read(offset_io, 8))[0]
        if size == 0:  # the whole section from the offset (MmMapViewInSystemSpace's page)
            size = len(data) - offset
        pages = -(-len(data) // PAGE) * PAGE  # the section's bytes: whole pages of the file
        if offset < 0 or size <= 0 or offset + size > pages:
            misuse(f"{name}: {size} bytes at {offset} of a {len(data)}-byte section")
            return count(name, K.STATUS_INVALID_PARAMETER, ok=False)
        size = -(-size // PAGE) * PAGE
        base = block(size)
        se.mem_write(base, data[offset:offset + size])
        st["views"][base] = (size, obj)
        put(base_out, "<Q", base)
        put(size_io, "<Q", size)  # "returns the actual size mapped"
        return count(name, K.STATUS_SUCCESS)

    def mm_unmap_view_in_system_space(emu, api, func, argv):
        view = st["views"].pop(argv[0], None)
        if view is None:
            misuse(f"MmUnmapViewInSystemSpace({argv[0]:#x}): no view is mapped there")
        else:
            se.mem_free(argv[0])
        return count("MmUnmapViewInSystemSpace", K.STATUS_SUCCESS, ok=view is not None)

    def mm_copy_memory(emu, api, func, argv):
        # MM_COPY_ADDRESS is 8 bytes, passed by value: in its register, as the address.
        target, source, length, flags, copied = argv[:5]
        name = "MmCopyMemory"
        if flags != K.MM_COPY_MEMORY_VIRTUAL:
            misuse(f"{name} with flags {flags:#x}: the harness copies virtual addresses only")
            return count(name, K.STATUS_INVALID_PARAMETER)
        inside = any(b <= source and source + length <= b + n for b, (n, _) in st["views"].items())
        pooled = any(b <= target and target + length <= b + n for b, (_, n) in st["pool"].items())
        if not inside or not pooled:
            # The harness models copies out of a mapped view into a pool block ("This buffer
            # must be in nonpageable memory"), the one copy the samples make.
            where = "the source is in no mapped view" if not inside else "the target is in no pool"
            misuse(f"{name}({target:#x}, {source:#x}, {length}): {where}")
            put(copied, "<Q", 0)
            return count(name, K.STATUS_INVALID_PARAMETER)
        se.mem_write(target, read(source, length))
        put(copied, "<Q", length)
        return count(name, K.STATUS_SUCCESS)

    def flt_cancel_file_open(emu, api, func, argv):
        st["cancelled"].add(argv[1])
        return count("FltCancelFileOpen", None)

    def flt_allocate_callback_data_ex(emu, api, func, argv):
        instance, fobj, _flags, ret = argv[:4]
        data = block(0x200)
        iopb = data + 0x100
        p = "FLT_IO_PARAMETER_BLOCK."
        put(data + LAYOUT["FLT_CALLBACK_DATA.Iopb"], "<Q", iopb)
        put(iopb + LAYOUT[p + "TargetFileObject"], "<Q", fobj)
        put(iopb + LAYOUT[p + "TargetInstance"], "<Q", instance)
        st["requests"][data] = {"busy": False}
        put(ret, "<Q", data)
        return count("FltAllocateCallbackDataEx", K.STATUS_SUCCESS)

    def request(api, data):
        """The callback data at `data` if the driver allocated it and no I/O of it is in flight."""
        known = st["requests"].get(data)
        if known is None or known["busy"]:
            why = ("not allocated by FltAllocateCallbackDataEx" if known is None
                   else "its I/O is in flight")
            misuse(f"{export(api)}({data:#x}): {why}")
            return None
        return known

    def flt_free_callback_data(emu, api, func, argv):
        known = request(api, argv[0])
        if known is not None:
            del st["requests"][argv[0]]
            se.mem_free(argv[0])
        return count("FltFreeCallbackData", None, ok=known is not None)

    def flt_reuse_callback_data(emu, api, func, argv):
        if request(api, argv[0]) is not None:
            iopb = u64(argv[0] + LAYOUT["FLT_CALLBACK_DATA.Iopb"])
            se.mem_write(iopb + LAYOUT["FLT_IO_PARAMETER_BLOCK.Parameters"], b"\0" * 48)
            se.mem_write(argv[0] + LAYOUT["FLT_CALLBACK_DATA.IoStatus"], b"\0" * 16)
        return count("FltReuseCallbackData", None)

    def file_system(data):
        """The file system below: answers the request in `data` into its IoStatus. A query of
        FileStandardInformation or FileInternalInformation about the harness's file;
        STATUS_INFO_LENGTH_MISMATCH for a short buffer; anything else STATUS_INVALID_PARAMETER."""
        iopb = u64(data + LAYOUT["FLT_CALLBACK_DATA.Iopb"])
        p = "FLT_IO_PARAMETER_BLOCK."
        params = iopb + LAYOUT[p + "Parameters"]
        status, written = K.STATUS_INVALID_PARAMETER, 0
        if read(iopb + LAYOUT[p + "MajorFunction"], 1)[0] == K.IRP_MJ_QUERY_INFORMATION:
            q = "QueryFileInformation."
            length = u32(params + PARAMETERS[q + "Length"])
            klass = u32(params + PARAMETERS[q + "FileInformationClass"])
            buffer = u64(params + PARAMETERS[q + "InfoBuffer"])
            fobj = u64(iopb + LAYOUT[p + "TargetFileObject"])
            size = len(file_contents(unicode_string(fobj + LAYOUT["FILE_OBJECT.FileName"])))
            answer = None
            if klass == K.FileStandardInformation:
                f = "FILE_STANDARD_INFORMATION."
                answer = bytearray(LAYOUT["sizeof FILE_STANDARD_INFORMATION"])
                allocated = -(-size // PAGE) * PAGE
                struct.pack_into("<q", answer, LAYOUT[f + "AllocationSize"], allocated)
                struct.pack_into("<q", answer, LAYOUT[f + "EndOfFile"], size)
                struct.pack_into("<I", answer, LAYOUT[f + "NumberOfLinks"], 1)
            elif klass == K.FileInternalInformation:
                answer = bytearray(LAYOUT["sizeof FILE_INTERNAL_INFORMATION"])
                struct.pack_into("<q", answer, LAYOUT["FILE_INTERNAL_INFORMATION.IndexNumber"],
                                 FILE_ID)
            if answer is not None and length < len(answer):
                status = K.STATUS_INFO_LENGTH_MISMATCH
            elif answer is not None:
                se.mem_write(buffer, bytes(answer))
                status, written = K.STATUS_SUCCESS, len(answer)
        io = data + LAYOUT["FLT_CALLBACK_DATA.IoStatus"]
        put(io, "<I", status)
        put(io + LAYOUT["IO_STATUS_BLOCK.Information"], "<Q", written)

    def flt_perform_synchronous_io(emu, api, func, argv):
        if request(api, argv[0]) is not None:
            file_system(argv[0])
        return count("FltPerformSynchronousIo", None)

    def flt_perform_asynchronous_io(emu, api, func, argv):
        data, routine, context = argv[:3]
        known = request(api, data)
        if known is None:
            return count("FltPerformAsynchronousIo", K.STATUS_INVALID_PARAMETER)
        known["busy"] = True
        file_system(data)
        # "STATUS_PENDING: ... The filter manager will call the callback routine when the I/O
        # operation is complete": after the driver's routine returns (complete_requests).
        st["completions"].append((routine, data, context))
        return count("FltPerformAsynchronousIo", K.STATUS_PENDING)

    def file_contents(name):
        """What the file at `name` holds: FILE_SIZE bytes of text, and inside the demo folder
        the EICAR test string across the end of the first 64 KiB."""
        text = (b"The harness's file: plain text, nothing to find. " * 2000)[:FILE_SIZE]
        if f"\\{folder}\\" in name:
            text = text[:EICAR_AT] + EICAR + text[EICAR_AT + len(EICAR):]
        return text

    st["unreferenced"] = unreferenced

    hooks = {
        # export: (argc, hook). docs/emulate.md has each one's documented behaviour.
        "FltRegisterFilter": (3, flt_register_filter),
        "FltStartFiltering": (1, fixed(K.STATUS_SUCCESS)),
        "FltUnregisterFilter": (1, fixed(None)),
        "FltRegisterForDataScan": (1, flt_register_for_data_scan),
        "IoOpenDriverRegistryKey": (5, io_open_driver_registry_key),
        "ZwOpenKey": (3, zw_open_key),
        "ZwQueryValueKey": (6, zw_query_value_key),
        "ZwClose": (1, fixed(K.STATUS_SUCCESS)),
        "FltInitializePushLock": (1, fixed(None)),
        "FltDeletePushLock": (1, fixed(None)),
        "FltAcquirePushLockExclusive": (1, fixed(None)),
        "FltAcquirePushLockShared": (1, fixed(None)),
        "FltReleasePushLock": (1, fixed(None)),
        "ExInitializeRundownProtection": (1, fixed(None)),
        "ExWaitForRundownProtectionRelease": (1, fixed(None)),
        "ExAcquireRundownProtection": (1, fixed(1)),
        "ExReleaseRundownProtection": (1, fixed(None)),
        # The scan thread is not run (Speakeasy would start it only after DriverEntry's run, and
        # its KeWaitForSingleObject returns at once, so a worker loop spins): fake objects.
        "PsCreateSystemThread": (7, out_ptr(FAKE_THREAD_HANDLE, 0)),
        "ObReferenceObjectByHandle": (6, out_ptr(FAKE_THREAD, 4)),
        "ObCloseHandle": (2, fixed(K.STATUS_SUCCESS)),
        "ObfReferenceObject": (1, fixed(0)),
        "ObfDereferenceObject": (1, ob_dereference),
        "ObDereferenceObjectDeferDelete": (1, ob_dereference),
        "FltObjectReference": (1, fixed(K.STATUS_SUCCESS)),
        "FltObjectDereference": (1, fixed(None)),
        # Waits end at once with STATUS_SUCCESS (the object is signalled).
        "KeWaitForSingleObject": (5, fixed(K.STATUS_SUCCESS)),
        "KeInitializeEvent": (3, ke_initialize_event),
        "KeSetEvent": (3, ke_set_event),
        "ExAllocatePool2": (3, ex_allocate_pool2),
        "ExFreePoolWithTag": (2, ex_free_pool_with_tag),
        "FltAllocateContext": (5, flt_allocate_context),
        "FltReferenceContext": (1, flt_reference_context),
        "FltReleaseContext": (1, flt_release_context),
        "FltGetInstanceContext": (2, get_context("instance", 1)),
        "FltSetInstanceContext": (4, set_context("instance", 1)),
        "FltGetStreamHandleContext": (3, get_context("stream handle", 2)),
        "FltSetStreamHandleContext": (5, set_context("stream handle", 2)),
        "FltGetSectionContext": (3, get_context("section", 2)),
        "FltGetFileNameInformation": (3, flt_get_file_name_information),
        "FltReleaseFileNameInformation": (1, flt_release_file_name_information),
        # No extra create parameters: STATUS_SUCCESS with EcpList NULL.
        "FltGetEcpListFromCallbackData": (3, out_ptr(0, 2)),
        "FltIsDirectory": (3, flt_is_directory),
        # A section backed by a buffer the harness fills (file_contents), its views and copies.
        "FltCreateSectionForDataScan": (12, flt_create_section_for_data_scan),
        "FltCloseSectionForDataScan": (1, flt_close_section_for_data_scan),
        "MmMapViewInSystemSpaceEx": (5, mm_map_view_in_system_space_ex),
        "MmUnmapViewInSystemSpace": (1, mm_unmap_view_in_system_space),
        "MmCopyMemory": (5, mm_copy_memory),
        "FltCancelFileOpen": (2, flt_cancel_file_open),
        "FltGetRequestorProcessId": (1, fixed(REQUESTOR_PID)),
        # I/O the driver sends itself, answered by the harness's file system (file_system).
        "FltAllocateCallbackDataEx": (4, flt_allocate_callback_data_ex),
        "FltFreeCallbackData": (1, flt_free_callback_data),
        "FltReuseCallbackData": (1, flt_reuse_callback_data),
        "FltPerformSynchronousIo": (1, flt_perform_synchronous_io),
        "FltPerformAsynchronousIo": (3, flt_perform_asynchronous_io),
        "DbgPrintEx": (3, dbg_print_ex),
    }
    def inject(name, argv):
        """The faulted call: FAULTS' status, nothing written, no pair counted. A request's I/O
        fails in its IoStatus; an asynchronous one still completes (its page: Filter Manager
        "will always call this routine, even if FltPerformAsynchronousIo fails")."""
        status = FAULTS[name]
        if name in ("FltPerformSynchronousIo", "FltPerformAsynchronousIo"):
            known = request(name, argv[0])
            if known is None:
                return count(name, None if name == "FltPerformSynchronousIo"
                             else K.STATUS_INVALID_PARAMETER)
            io = argv[0] + LAYOUT["FLT_CALLBACK_DATA.IoStatus"]
            put(io, "<I", status)
            put(io + LAYOUT["IO_STATUS_BLOCK.Information"], "<Q", 0)
            if name == "FltPerformSynchronousIo":
                return count(name, None)
            known["busy"] = True
            st["completions"].append((argv[1], argv[0], argv[2]))
            return count(name, K.STATUS_PENDING)
        if name == "MmCopyMemory":
            put(argv[4], "<Q", 0)  # "the caller must check NumberOfBytesTransferred"
        return count(name, 0 if status is None else status, ok=False)

    def faulting(name, hook):
        """`hook`, but the n-th call of the export during a sweep run fails (inject)."""
        def wrapped(emu, api, func, argv):
            fault = st["fault"]
            if fault is not None and fault["import"] == name:
                fault["seen"] += 1
                if fault["seen"] == fault["n"]:
                    fault["hit"] = True
                    return inject(name, argv)
            return hook(emu, api, func, argv)
        return wrapped

    for name, (argc, hook) in hooks.items():
        se.add_api_hook(faulting(name, hook) if name in FAULTS else hook, "*", name, argc=argc)

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
    out["registration"] = {k: v for k, v in reg.items()
                           if k not in ("unload", "cleanup", "instance", "section_addr", "driver")}
    out["driver_object"] = reg.get("driver", 0)
    if folder is not None and callbacks:
        out["callbacks"] = run_load(se, reg, insns, out, st, folder, expect_eicar)
    if reg.get("unload"):
        insns["n"] = 0
        se.call(reg["unload"], [0])
        out["unload"] = {"ret": se.reg_read("rax") & 0xFFFFFFFF, "instructions": insns["n"]}
        out["misuse"].extend(drain(se, st))
    return out


# Documented returns: FLT_PREOP_CALLBACK_STATUS (SUCCESS_WITH_CALLBACK 0 .. DISALLOW_FSFILTER_IO
# 6) and FLT_POSTOP_CALLBACK_STATUS (FINISHED_PROCESSING 0, MORE_PROCESSING_REQUIRED 1,
# DISALLOW_FSFILTER_IO 2), fltKernel.h.
PREOP_STATUSES = range(0, K.FLT_PREOP_DISALLOW_FSFILTER_IO + 1)
POSTOP_STATUSES = range(0, K.FLT_POSTOP_DISALLOW_FSFILTER_IO + 1)


def invoke(se, addr, args):
    """Calls `addr` and returns (return value, None) if it returned, or (None, why) if the run
    ended before its return: an import with no handler, a fault, Speakeasy's limits."""
    try:
        se.call(addr, args)
    except Exception as err:  # a fault Speakeasy raises rather than records
        return None, str(err)
    error = se.emu.runs[-1].error if se.emu.runs else {}
    if error:
        where = error.get("api_name") or f"address {error.get('address', '?')}"
        return None, f"{error.get('type', 'error')} ({where}, pc {error.get('pc', '?')})"
    return se.reg_read("rax") & 0xFFFFFFFF, None


def run_load(se, reg, insns, out, st, folder, expect_eicar):
    """The keyed load's life after DriverEntry, one row per driver routine called: the
    instance's InstanceSetup, every pre- and post-operation callback (run_callbacks), one
    SectionNotificationCallback for the last section still open, a manual detach
    (InstanceQueryTeardown, where registered), InstanceTeardownStart and
    InstanceTeardownComplete; then Filter Manager deletes the instance's contexts."""
    rows = []
    cb = reg.get("instance", {})
    objs = related_objects(se, 0)
    attached = True
    if cb.get("Setup"):
        args = [objs, K.FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT, K.FILE_DEVICE_DISK_FILE_SYSTEM,
                K.FLT_FSTYPE_NTFS]
        # "STATUS_SUCCESS or an NTSTATUS value": any; an error or warning status declines.
        arm(st, "InstanceSetup")
        row = disarm(st, gated(se, insns, out, st, cb["Setup"], args, None, ""))
        attached = row["ret"] is not None and row["ret"] < 0x80000000
        if row["ret"] is not None and not attached:
            row["note"] = "declined the volume: no instance"
        rows.append(named(row, "InstanceSetup"))
    if not attached:
        return rows
    rows += run_callbacks(se, reg.get("operations", []), insns, out, st, folder, expect_eicar)
    open_now = [ctx for ctx, s in st["sections"].items() if s["open"]]
    if reg.get("section_addr") and open_now:
        arm(st, "SectionNotification")
        rows.append(disarm(st, notify(se, insns, out, st, reg["section_addr"], open_now[-1])))
    reason = K.FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD
    if cb.get("QueryTeardown"):
        # A manual detach (FilterDetach): "STATUS_SUCCESS or an NTSTATUS value"; an error or
        # warning status keeps the instance, which the unload then tears down.
        arm(st, "InstanceQueryTeardown")
        row = disarm(st, gated(se, insns, out, st, cb["QueryTeardown"], [objs, 0], None, ""))
        if row["ret"] is not None and row["ret"] < 0x80000000:
            reason = K.FLTFL_INSTANCE_TEARDOWN_MANUAL
            row["note"] = "detach allowed"
        rows.append(named(row, "InstanceQueryTeardown"))
    if cb.get("TeardownStart"):
        arm(st, "InstanceTeardownStart")
        row = disarm(st, gated(se, insns, out, st, cb["TeardownStart"], [objs, reason], None, ""))
        rows.append(named(row, "InstanceTeardownStart"))

    def delete_contexts():
        # "The filter manager automatically deletes contexts when ... a minifilter instance is
        # detached from a volume" (Deleting Contexts): every link of the instance goes.
        for key in [k for k in st["links"] if k[1] == FAKE_INSTANCE and k[0] != "section"]:
            addr = st["links"].pop(key)
            st["contexts"][addr]["linked"] = False
            st["unreferenced"](addr)
    if cb.get("TeardownComplete"):
        arm(st, "InstanceTeardownComplete")
        row = disarm(st, gated(se, insns, out, st, cb["TeardownComplete"], [objs, reason], None,
                               "", after=delete_contexts))
        rows.append(named(row, "InstanceTeardownComplete"))
    else:
        delete_contexts()
        out["misuse"].extend(drain(se, st))
    still = [ctx for ctx, s in st["sections"].items() if s["open"]]
    if still:
        out["misuse"].append(f"{len(still)} section(s) still open after instance teardown")
    return rows


def arm(st, routine):
    """Arms the fault routine_sweep asked for (st["arm"]) if `routine` is the one it names."""
    wanted = st["arm"]
    st["fault"] = None
    if wanted is not None and wanted[0] == routine:
        st["fault"] = {"import": wanted[1], "n": wanted[2], "seen": 0, "hit": False}


def disarm(st, row):
    """The row of the routine arm armed, with whether its fault was injected."""
    if st["fault"] is not None:
        row["fault_hit"] = st["fault"]["hit"]
    st["fault"] = None
    return row


def named(row, name):
    row.update(where="-", major=name, kind="-")
    return row


def related_objects(se, fobj):
    """FLT_RELATED_OBJECTS for the harness's filter, volume and instance, and `fobj`."""
    objs = se.mem_alloc(LAYOUT["sizeof FLT_RELATED_OBJECTS"])
    se.mem_write(objs, b"\0" * LAYOUT["sizeof FLT_RELATED_OBJECTS"])
    r = "FLT_RELATED_OBJECTS."
    se.mem_write(objs + LAYOUT[r + "Size"], struct.pack("<H", LAYOUT["sizeof FLT_RELATED_OBJECTS"]))
    se.mem_write(objs + LAYOUT[r + "Filter"], struct.pack("<Q", FAKE_FILTER))
    se.mem_write(objs + LAYOUT[r + "Volume"], struct.pack("<Q", FAKE_VOLUME))
    se.mem_write(objs + LAYOUT[r + "Instance"], struct.pack("<Q", FAKE_INSTANCE))
    se.mem_write(objs + LAYOUT[r + "FileObject"], struct.pack("<Q", fobj))
    return objs


def open_sections(st):
    return frozenset(ctx for ctx, s in st["sections"].items() if s["open"])


def complete_requests(se, st):
    """The asynchronous requests the routine started complete once it has returned: Filter
    Manager calls each one's completion routine (PFLT_COMPLETED_ASYNC_IO_CALLBACK) with its
    callback data, which is the driver's again, and its context."""
    reasons = []
    while st["completions"]:
        routine, data, context = st["completions"].pop(0)
        st["requests"][data]["busy"] = False
        _, failed = invoke(se, routine, [data, context])
        if failed:
            reasons.append(f"completion routine {routine:#x} ended early: {failed}")
    return reasons


def drain(se, st):
    """Filter Manager runs a context's cleanup callback once its last reference is released,
    then frees it; here, after the routine that released it (a cleanup may release more)."""
    reasons = []
    while st["pending"]:
        cleanup, context, ctype = st["pending"].pop(0)
        if cleanup:
            _, failed = invoke(se, cleanup, [context, ctype])
            if failed:
                reasons.append(f"context cleanup {cleanup:#x} ended early: {failed}")
        se.mem_free(context)
    return reasons


def gated(se, insns, out, st, addr, args, allowed, what, after=None):
    """Calls one driver routine and the context cleanups it starts. The row has the reasons it
    failed: it ended before its return, returned a value outside `allowed` (None: any), misused
    an export, or left a counted pair unbalanced. A routine that opens a section it leaves open,
    or closes one opened before it, holds what the section holds across routines: its pairs are
    checked at the end of the load instead (every pair back at zero after the unload)."""
    calls, per = sum(out["calls"].values()), dict(out["calls"])
    balance, misused, sections = dict(out["balance"]), len(out["misuse"]), open_sections(st)
    insns["n"] = 0
    ret, error = invoke(se, addr, args)
    reasons = [f"ended before its return: {error}"] if error else []
    reasons += complete_requests(se, st)
    if after:
        after()
    reasons += drain(se, st)
    if not error and allowed is not None and ret not in allowed:
        reasons.append(f"returned {ret:#x}, not a documented {what}")
    carried = open_sections(st) != sections
    for pair in sorted(set(balance) | set(out["balance"])):
        delta = out["balance"].get(pair, 0) - balance.get(pair, 0)
        if delta and not carried:
            reasons.append(f"{pair} pair unbalanced ({delta:+d})")
    reasons += out["misuse"][misused:]
    del out["misuse"][misused:]  # reported here, not again on the driver's line
    note = ""
    if carried:
        moves = [word for word, changed in (("opens", open_sections(st) - sections),
                                            ("closes", sections - open_sections(st))) if changed]
        note = f"{' and '.join(moves)} a section: pairs checked after unload"
    made = {name: n - per.get(name, 0) for name, n in out["calls"].items() if n != per.get(name, 0)}
    delta = {pair: out["balance"].get(pair, 0) - balance.get(pair, 0)
             for pair in set(balance) | set(out["balance"])}
    return {"instructions": insns["n"], "calls": sum(out["calls"].values()) - calls, "ret": ret,
            "reasons": reasons, "note": note, "made": made, "carried": carried,
            "delta": {pair: d for pair, d in delta.items() if d}}


def notify(se, insns, out, st, callback, ctx):
    """The SectionNotificationCallback for the section of `ctx`, as for a non-cached write to
    its file (an operation that needs the cache purged). Filter Manager holds a reference on
    the context for the call; the page's one return is STATUS_SUCCESS."""
    mem = se.mem_alloc(0x400)
    se.mem_write(mem, b"\0" * 0x400)
    data, iopb = mem, mem + 0x100
    se.mem_write(data + LAYOUT["FLT_CALLBACK_DATA.Iopb"], struct.pack("<Q", iopb))
    p = "FLT_IO_PARAMETER_BLOCK."
    se.mem_write(iopb + LAYOUT[p + "MajorFunction"], bytes([K.IRP_MJ_WRITE]))
    se.mem_write(iopb + LAYOUT[p + "IrpFlags"], struct.pack("<I", K.IRP_NOCACHE))
    se.mem_write(iopb + LAYOUT[p + "TargetFileObject"],
                 struct.pack("<Q", st["sections"][ctx]["key"][2]))
    se.mem_write(iopb + LAYOUT[p + "TargetInstance"], struct.pack("<Q", FAKE_INSTANCE))
    context = st["contexts"][ctx]
    context["refs"] += 1  # Filter Manager's, for the call

    def release():
        context["refs"] -= 1
        if ctx in st["contexts"]:
            st["unreferenced"](ctx)
    row = gated(se, insns, out, st, callback, [FAKE_INSTANCE, ctx, data], [K.STATUS_SUCCESS],
                "return (the page: STATUS_SUCCESS)", after=release)
    return named(row, "SectionNotification")


def run_callbacks(se, operations, insns, out, st, folder, expect_eicar):
    """Calls every registered pre- and post-operation callback once for a file outside the demo
    folder and once inside it (operation). Each row has the reasons it failed (gated), and for a
    driver that reads DemoFolder (common::scope), any counted call its pre-create makes for the
    file outside the demo folder. A post-create that cancels the open (FltCancelFileOpen) must
    fail it; with `expect_eicar`, the open of the file inside the demo folder (EICAR) must fail
    with STATUS_VIRUS_INFECTED and the other go on. Then the fault sweep (sweep) of the rows of
    the two 64-character paths."""
    rows = []
    scoped = bool(out["registry"]["queried"])  # the driver reads DemoFolder: common::scope
    files = [("out", outside(64)), ("in", f"\\Users\\u\\{folder}\\" + "b" * 38 + ".txt")]
    if scoped:
        files += [(f"out{n}", outside(n)) for n in GROWTH if n != 64]
    for where, name in files:
        for op in operations:
            for kind in ("pre", "post"):
                addr = op[kind + "_addr"]
                if not addr or (where not in ("out", "in")
                                and (kind, op["major"]) != ("pre", K.IRP_MJ_CREATE)):
                    continue
                row = operation(se, insns, out, st, op, kind, name)
                create = op["major"] == K.IRP_MJ_CREATE
                if scoped and where != "in" and kind == "pre" and create and row["calls"]:
                    # common::scope decides from FileObject->FileName alone: "no name query, no
                    # allocation, no log line" outside the demo folder.
                    row["reasons"].append(
                        f"{row['calls']} counted calls for a file outside the demo folder")
                status, cancelled = row["status"], row["cancelled"]
                if expect_eicar and kind == "post" and create and not row["reasons"]:
                    if where == "in" and status != K.STATUS_VIRUS_INFECTED:
                        row["reasons"].append(f"the EICAR file's open ended with {status:#x}, "
                                              "not STATUS_VIRUS_INFECTED")
                    if where == "out" and (cancelled or status != K.STATUS_SUCCESS):
                        row["reasons"].append(f"the clean file's open ended with {status:#x}")
                row.update(where=where, major=f"{op['major']:#x}", kind=kind, op=op, name=name)
                rows.append(row)
    if scoped:
        growth(rows)
    if st["arm"] is None:
        out["faults"] = sweep(se, insns, out, st, [r for r in rows if r["where"] in ("out", "in")])
    return rows


def operation(se, insns, out, st, op, kind, name):
    """One call of `op`'s pre- or post-operation callback for the file `name`, with
    FLT_CALLBACK_DATA, FLT_IO_PARAMETER_BLOCK, FLT_RELATED_OBJECTS and a fresh FILE_OBJECT built
    at LAYOUT's offsets (a create asks for FILE_READ_DATA, the file object records read access
    and read sharing). The row (gated) also has the IoStatus the callback left, whether it
    cancelled the open, and `failed_io`: how it failed the user's I/O, if it did."""
    addr = op[kind + "_addr"]
    mem = se.mem_alloc(0x1000)
    se.mem_write(mem, b"\0" * 0x1000)
    data, iopb, fobj = mem, mem + 0x100, mem + 0x400
    security, text = mem + 0x900, mem + 0xA00  # text: 256 characters at most
    objs = related_objects(se, fobj)
    se.mem_write(data + LAYOUT["FLT_CALLBACK_DATA.Iopb"], struct.pack("<Q", iopb))
    p = "FLT_IO_PARAMETER_BLOCK."
    se.mem_write(iopb + LAYOUT[p + "MajorFunction"], bytes([op["major"]]))
    se.mem_write(iopb + LAYOUT[p + "TargetFileObject"], struct.pack("<Q", fobj))
    se.mem_write(iopb + LAYOUT[p + "TargetInstance"], struct.pack("<Q", FAKE_INSTANCE))
    create = op["major"] == K.IRP_MJ_CREATE
    if create:
        params = iopb + LAYOUT[p + "Parameters"]
        se.mem_write(params + LAYOUT["FLT_PARAMETERS_0.SecurityContext"],
                     struct.pack("<Q", security))
        se.mem_write(security + LAYOUT["IO_SECURITY_CONTEXT.DesiredAccess"],
                     struct.pack("<I", K.FILE_READ_DATA))
    se.mem_write(fobj + LAYOUT["FILE_OBJECT.ReadAccess"], b"\x01")
    se.mem_write(fobj + LAYOUT["FILE_OBJECT.SharedRead"], b"\x01")
    encoded = name.encode("utf-16-le")
    se.mem_write(text, encoded)
    u = fobj + LAYOUT["FILE_OBJECT.FileName"]
    se.mem_write(u + LAYOUT["UNICODE_STRING.Length"], struct.pack("<H", len(encoded)))
    se.mem_write(u + LAYOUT["UNICODE_STRING.MaximumLength"], struct.pack("<H", len(encoded)))
    se.mem_write(u + LAYOUT["UNICODE_STRING.Buffer"], struct.pack("<Q", text))
    args = [data, objs, mem + 0x800] if kind == "pre" else [data, objs, 0, 0]
    allowed = PREOP_STATUSES if kind == "pre" else POSTOP_STATUSES
    what = f"{'FLT_PREOP' if kind == 'pre' else 'FLT_POSTOP'}_* status"
    row = gated(se, insns, out, st, addr, args, allowed, what)
    io_status = data + LAYOUT["FLT_CALLBACK_DATA.IoStatus"]
    status = struct.unpack("<I", se.mem_read(io_status, 4))[0]
    cancelled = fobj in st["cancelled"]
    if cancelled:
        if kind != "post" or not create:
            row["reasons"].append("FltCancelFileOpen outside a post-create")
        elif status < 0x80000000:
            row["reasons"].append(f"FltCancelFileOpen, yet IoStatus is {status:#x}: "
                                  "the open must fail")
        else:
            row["note"] = f"open denied: {status:#x}"
    failed_io = None
    if kind == "pre" and row["ret"] == K.FLT_PREOP_COMPLETE and status >= 0x80000000:
        failed_io = f"completed the I/O with {status:#x}"
    elif kind == "post" and (cancelled or status >= 0x80000000):
        failed_io = f"{'cancelled the open' if cancelled else 'failed the I/O'} with {status:#x}"
    row.update(status=status, cancelled=cancelled, failed_io=failed_io)
    return row


def sweep(se, insns, out, st, rows):
    """The fault sweep, in the keyed load's emulator after the clean calls: for each row (a
    callback and a path), each export in FAULTS it called, and each of its call sites n in the
    clean call, the callback is called again with the n-th call of that export failing as its
    page says it can (FAULTS). The run must end normally, return a documented value, misuse no
    export, leave every counted pair as the clean call did (balanced, or for a routine that
    opens a section, at most what the clean call carried: the load's end checks the rest), and
    not fail the user's I/O where the clean call did not (the sample fails open). Returns one
    record a run: the row, the export, n, and the reasons it failed (None: the n-th call never
    came)."""
    records = []
    for clean in rows:
        for name in [n for n in FAULTS if clean["made"].get(n)]:
            for n in range(1, clean["made"][name] + 1):
                st["fault"] = {"import": name, "n": n, "seen": 0, "hit": False}
                row = operation(se, insns, out, st, clean["op"], clean["kind"], clean["name"])
                hit = st["fault"]["hit"]
                st["fault"] = None
                reasons = list(row["reasons"])
                if row["carried"]:
                    for pair, d in sorted(row["delta"].items()):
                        if d != clean["delta"].get(pair, 0) or not clean["carried"]:
                            reasons.append(f"{pair} pair left {d:+d} (the clean call: "
                                           f"{clean['delta'].get(pair, 0):+d})")
                if row["failed_io"] and row["failed_io"] != clean["failed_io"]:
                    reasons.append(f"{row['failed_io']}: the user's I/O fails")
                records.append({"where": clean["where"], "major": clean["major"],
                                "kind": clean["kind"], "import": name, "n": n,
                                "reasons": reasons if hit else None})
    return records


# The lengths of the names outside the demo folder that a scoped pre-create is timed on.
GROWTH = (16, 64, 256)


def outside(n):
    """A name of `n` characters outside the demo folder: \\Users\\u\\aaa...a.txt."""
    return "\\Users\\u\\" + "a" * (n - 13) + ".txt"


def growth(rows):
    """common::scope promises "one scan of the name" outside the demo folder (and no counted
    call, checked per row): a cost linear in the name's length. Per character, the step from 64
    to 256 characters may then cost at most twice the step from 16 to 64 (and one instruction
    more, for rounding); a second scan per component or per character (quadratic) costs four
    times as much. No page gives an absolute figure, so there is no budget, only this shape."""
    pre = {r["where"]: r for r in rows
           if r["kind"] == "pre" and r["major"] == f"{K.IRP_MJ_CREATE:#x}" and r["where"] != "in"}
    timed = [pre.get("out" if n == 64 else f"out{n}") for n in GROWTH]
    if any(r is None or r["ret"] is None for r in timed):
        return
    (a, n1), (b, n2), (c, n3) = [(r["instructions"], n) for r, n in zip(timed, GROWTH)]
    low, high = (b - a) / (n2 - n1), (c - b) / (n3 - n2)
    last = timed[-1]
    if high > 2 * max(low, 0) + 1:
        last["reasons"].append(f"pre-create grows faster than its name: {high:.1f} instructions a "
                               f"character from {n2} to {n3} characters, {low:.1f} from {n1} to "
                               f"{n2}")
    else:
        last["note"] = f"{low:.1f} then {high:.1f} instructions a character: linear"


# The out-of-scope budget: a pre-operation callback for a file outside the demo folder, with a
# 64-character name, runs at most OUT_OF_SCOPE_BUDGET driver instructions; pre-create reads the
# name (common::scope's one pass over FileObject->FileName), so its budget is PRE_CREATE_BUDGET's
# constant plus its instructions a character, for any length. Measured today: 113 + 8 a character
# for pre-create (241, 625, 2161 at 16, 64, 256 characters), 9 to 42 for the others; the budget
# keeps a margin of about a third on the constant and a quarter on the per-character cost.
OUT_OF_SCOPE_BUDGET = 100
PRE_CREATE_BUDGET = (150, 10)
# The calls none of them may make: a name query, an allocation, a log line.
FORBIDDEN = ("FltGetFileNameInformation", "FltAllocateContext", "ExAllocatePool2",
             "FltAllocateCallbackDataEx", "DbgPrintEx")


def budget_rows(rows):
    """One (callback, kind, characters, instructions, budget, forbidden calls, verdict) a callback
    for a file outside the demo folder: every `out` row, and pre-create's `out16`/`out256`. A
    post-operation callback whose pre-operation callback returned FLT_PREOP_SUCCESS_NO_CALLBACK
    (or FLT_PREOP_COMPLETE) there is listed, not budgeted: Filter Manager does not call it."""
    table = []
    pre = {r["major"]: r["ret"] for r in rows if r["kind"] == "pre" and r["where"] == "out"}
    for row in rows:
        if row["kind"] not in ("pre", "post") or not row["where"].startswith("out"):
            continue
        chars = int(row["where"][3:] or 64)
        create = row["major"] == f"{K.IRP_MJ_CREATE:#x}"
        skipped = (K.FLT_PREOP_SUCCESS_NO_CALLBACK, K.FLT_PREOP_COMPLETE)
        if row["kind"] == "post" and pre.get(row["major"]) in skipped:
            table.append((row["major"], "post", chars, row["instructions"], "-", "-",
                          f"not called (pre returned {pre[row['major']]:#x})"))
            continue
        limit = (PRE_CREATE_BUDGET[0] + PRE_CREATE_BUDGET[1] * chars
                 if create and row["kind"] == "pre" else OUT_OF_SCOPE_BUDGET)
        forbidden = sum(row["made"].get(name, 0) for name in FORBIDDEN)
        why = []
        if row["instructions"] > limit:
            why.append(f"{row['instructions']} instructions, budget {limit}")
        if forbidden:
            why.append(", ".join(f"{row['made'][n]}x {n}" for n in FORBIDDEN if row["made"].get(n)))
        table.append((row["major"], row["kind"], chars, row["instructions"], limit, forbidden,
                      "FAIL: " + "; ".join(why) if why else "ok"))
    return table


def entry_problems(entry):
    if entry["error"]:
        return [f"DriverEntry stopped: {entry['error'].get('type')} "
                f"{entry['error'].get('api_name', '')}".strip()]
    if int(entry["ret"], 16) & 0xFFFFFFFF != K.STATUS_SUCCESS:
        return [f"DriverEntry returned {entry['ret']}"]
    return []


def registry_problems(registry, driver):
    """A driver that opens keys must open its Parameters key once, with IoOpenDriverRegistryKey
    (its own driver object, the one it registers with, DriverRegKeyParameters, Flags zero), and
    query DemoFolder there once (common::scope's documented read); a driver that opens none is
    fine."""
    opened, queried = registry["opened"], registry["queried"]
    if not opened and not queried:
        return []
    problems = []
    if opened != [(driver, K.DriverRegKeyParameters, 0)]:
        problems.append(f"keys opened {opened}, expected IoOpenDriverRegistryKey of the driver's "
                        f"own object ({driver:#x}), DriverRegKeyParameters, Flags 0, once")
    if [(k, n) for k, n, _ in queried] != [(FAKE_KEY + 1, "DemoFolder")]:
        problems.append(f"values queried {[n for _, n, _ in queried]}, expected DemoFolder once")
    return problems


def end_problems(out):
    """What the load's end shows: the unload callback's return, FltUnregisterFilter called once,
    every counted pair back at zero, and the misuse no routine's row reported."""
    problems, unload = [], out.get("unload")
    if unload is None:
        problems.append("no FilterUnloadCallback")
    elif unload["ret"] != K.STATUS_SUCCESS:
        problems.append(f"unload returned {unload['ret']:#x}")
    if out["calls"].get("FltUnregisterFilter", 0) != 1:
        problems.append(f"FltUnregisterFilter called {out['calls'].get('FltUnregisterFilter', 0)}x")
    for pair, n in sorted(out["balance"].items()):
        if n:
            problems.append(f"{pair} imbalance {n:+d}")
    return problems + out["misuse"]


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
    problems += end_problems(out)
    for row in out.get("callbacks", []):
        row["verdict"] = ("FAIL: " + "; ".join(row["reasons"]) if row["reasons"]
                          else "ok" + (f" ({row['note']})" if row.get("note") else ""))
    failed = [row for row in out.get("callbacks", []) if row["reasons"]]
    if failed:
        problems.append(f"{len(failed)} of {len(out['callbacks'])} callbacks failed")
    budget = budget_rows(out.get("callbacks", []))
    over = [b for b in budget if b[-1].startswith("FAIL")]
    if over:
        problems.append(f"{len(over)} of {len(budget)} out-of-scope callbacks over budget")
    faults = out.get("faults", [])
    bad = [f for f in faults if f["reasons"]]
    if bad:
        problems.append(f"{len(bad)} of {len(faults)} injected faults failed")
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
        print("\t".join(["callback", row["where"], row["major"], row["kind"],
                         str(row["instructions"]), str(row["calls"]), ret, row["verdict"]]))
    for b in budget:
        print("\t".join(["budget", *map(str, b)]))
    injected = [f for f in faults if f["reasons"] is not None]
    print("\t".join(["faults", str(len(injected)), str(len(injected) - len(bad)), str(len(bad)),
                     str(len(faults) - len(injected))]))
    for f in (faults if os.environ.get("EMULATE_ALL_FAULTS") else bad):
        print("\t".join(["fault", f["where"], f["major"], f["kind"], f["import"], str(f["n"]),
                         "not reached" if f["reasons"] is None else "; ".join(f["reasons"]) or "ok"]))
    print("\t".join(fields))
    for line in out["log"]:  # the driver's debugger output, for a reader of the harness
        print("log\t" + line, file=sys.stderr)
    return 1 if problems else 0


def fail(why):
    print("ERROR\t" + why)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2], 0), sys.argv[3:] == ["eicar"]))
