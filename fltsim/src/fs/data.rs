//! Reads, writes (cached and non-cached) and flushes (`IRP_MN_FLUSH_AND_PURGE` purges).

use windows_sys::{
    Wdk::{
        Storage::FileSystem::Minifilters::FLT_IO_PARAMETER_BLOCK,
        System::SystemServices::{IRP_MN_FLUSH_AND_PURGE, IRP_NOCACHE},
    },
    Win32::Foundation::{
        NTSTATUS, STATUS_END_OF_FILE, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER,
        STATUS_SUCCESS,
    },
};

use super::{
    information::MAX_FILE_SIZE,
    purge::{Purge, purge},
    stream_of,
};
use crate::{
    kernel::Kernel,
    params::{self, Member as _},
};

pub(super) fn read(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
    // SAFETY: for IRP_MJ_READ the `Read` member is the live one; the block is initialized.
    let params = unsafe { params::ReadWrite::of(&iopb.Parameters) };
    let state = k.lock();
    let stream = match stream_of(&state, iopb.TargetFileObject as usize) {
        Ok(s) => &state.streams[s],
        Err(status) => return (status, 0),
    };
    if stream.is_dir {
        return (STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    let Ok(offset) = usize::try_from(params.byte_offset) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    if offset >= stream.data.len() {
        return (STATUS_END_OF_FILE, 0);
    }
    let n = (stream.data.len() - offset).min(params.length as usize);
    if n > 0 && params.buffer.is_null() {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    // SAFETY: the issuer provided `Length` writable bytes at ReadBuffer; `n <= Length`.
    unsafe {
        std::ptr::copy_nonoverlapping(stream.data[offset..].as_ptr(), params.buffer.cast(), n);
    };
    (STATUS_SUCCESS, n)
}

pub(super) fn write(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
    // SAFETY: for IRP_MJ_WRITE the `Write` member is the live one; the block is initialized.
    let params = unsafe { params::ReadWrite::of(&iopb.Parameters) };
    let Ok(stream) = stream_of(&k.lock(), iopb.TargetFileObject as usize) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    if iopb.IrpFlags & IRP_NOCACHE != 0
        && let Err(status) = purge(k, stream, Purge::NonCachedWrite, |_| ())
    {
        return (status, 0);
    }
    let Ok(offset) = usize::try_from(params.byte_offset) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    let len = params.length as usize;
    // Model files are small; an offset beyond any of them is a malformed request (for example
    // a write filled through windows-sys's layout, whose buffer pointer lands on `ByteOffset`).
    if offset
        .checked_add(len)
        .is_none_or(|end| end > MAX_FILE_SIZE)
    {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    if len > 0 && params.buffer.is_null() {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    let mut bytes = vec![0u8; len];
    if len > 0 {
        // SAFETY: the issuer provided `Length` readable bytes at WriteBuffer.
        unsafe {
            std::ptr::copy_nonoverlapping(params.buffer.cast::<u8>(), bytes.as_mut_ptr(), len);
        };
    }
    let mut state = k.lock();
    let file = &mut state.streams[stream].data;
    if file.len() < offset + len {
        file.resize(offset + len, 0);
    }
    file[offset..offset + len].copy_from_slice(&bytes);
    (STATUS_SUCCESS, len)
}

pub(super) fn flush(k: &Kernel, iopb: &FLT_IO_PARAMETER_BLOCK) -> (NTSTATUS, usize) {
    let Ok(stream) = stream_of(&k.lock(), iopb.TargetFileObject as usize) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    if u32::from(iopb.MinorFunction) == IRP_MN_FLUSH_AND_PURGE
        && let Err(status) = purge(k, stream, Purge::Other, |_| ())
    {
        return (status, 0);
    }
    (STATUS_SUCCESS, 0)
}
