//! Filters on the machine: loading one through its `DriverEntry`, detaching and unloading it,
//! the built-in counting filter, and Filter Manager's instance setup and teardown.

use std::sync::Arc;

use windows_sys::{
    Wdk::{
        Foundation::DRIVER_OBJECT,
        Storage::FileSystem::Minifilters::{
            FLT_RELATED_OBJECTS, FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
            FLTFL_INSTANCE_TEARDOWN_MANUAL,
        },
    },
    Win32::Foundation::{
        STATUS_FLT_DO_NOT_DETACH, STATUS_FLT_INSTANCE_NOT_FOUND, STATUS_SUCCESS, UNICODE_STRING,
    },
};

use crate::{
    irql,
    kernel::{EventKind, Frame, Kernel, run_as},
    state::{FilterRec, InstanceRec, filter_handle, instance_handle, volume_handle},
    status::NtStatus,
};

use super::{Counts, DriverEntry, World};

impl World {
    // ---- filters ------------------------------------------------------------------------------

    /// Loads a filter driver, as `fltmc load` does: calls `DriverEntry` at `PASSIVE_LEVEL` with a
    /// driver object and the service's registry path. Instances attach during
    /// `FltStartFiltering`, at the given altitude.
    ///
    /// # Errors
    /// The status `DriverEntry` returned.
    pub fn load(&self, name: &str, altitude: u32, entry: DriverEntry) -> Result<(), NtStatus> {
        let (index, driver, path) = {
            let mut state = self.kernel.lock();
            let driver = state
                .arena
                .alloc(std::mem::size_of::<DRIVER_OBJECT>(), 0)
                .cast::<DRIVER_OBJECT>();
            let text: Vec<u16> =
                format!("\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\{name}")
                    .encode_utf16()
                    .collect();
            let mut path = Box::new((UNICODE_STRING::default(), text));
            let bytes = u16::try_from(path.1.len() * 2).expect("short path");
            path.0 = UNICODE_STRING {
                Length: bytes,
                MaximumLength: bytes,
                Buffer: path.1.as_mut_ptr(),
            };
            state.filters.push(FilterRec {
                name: name.to_owned(),
                altitude,
                driver,
                registry_path: path,
                registered: false,
                started: false,
                unregistered: false,
                loaded: true,
                operations: std::collections::HashMap::new(),
                contexts: Vec::new(),
                unload: None,
                instance_setup: None,
                query_teardown: None,
                teardown_start: None,
                teardown_complete: None,
                section_notification: None,
                work_items_running: 0,
            });
            let index = state.filters.len() - 1;
            let path = &raw const state.filters[index].registry_path.0;
            (index, driver, path)
        };
        self.kernel.trace(
            EventKind::User,
            format!("fltmc load {name} (altitude {altitude})"),
        );
        let frame = Frame {
            filter: Some(index),
            who: name.to_owned(),
            what: "DriverEntry".into(),
        };
        // SAFETY: calling the driver's entry point with a zeroed driver object and a registry path
        // that both live in the model until the world drops, as the I/O manager does.
        let status = run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
            entry(driver, path)
        });
        self.kernel.trace(
            // `fltmc load` is `FilterLoad`, the user-mode `FltLoadFilter`, which reports what the
            // filter's `DriverEntry` returned (`STATUS_FAILED_DRIVER_ENTRY` on a failure).
            EventKind::FltMgr,
            format!("DriverEntry of {name} returned {}", NtStatus(status)),
        );
        if NtStatus(status).is_success() {
            let state = self.kernel.lock();
            let f = &state.filters[index];
            if !f.registered || !f.started {
                let message = format!(
                    "{name}: DriverEntry succeeded without {}",
                    if f.registered {
                        "FltStartFiltering"
                    } else {
                        "FltRegisterFilter"
                    }
                );
                drop(state);
                self.kernel.violation(message);
            }
            self.loaded.lock().expect("loaded list").push(index);
            Ok(())
        } else {
            let mut state = self.kernel.lock();
            state.filters[index].loaded = false;
            let leaked_registration =
                state.filters[index].registered && !state.filters[index].unregistered;
            drop(state);
            if leaked_registration {
                self.kernel.violation(format!(
                    "{name}: DriverEntry failed with {} but left the filter registered (call FltUnregisterFilter on the failure path)",
                    NtStatus(status)
                ));
            }
            crate::verifier::check_leaks(&self.kernel, index);
            crate::registry::check_leaks(&self.kernel, index, name);
            Err(NtStatus(status))
        }
    }

    /// Detaches filter `name`'s instance from volume `letter` while the filter stays loaded, as
    /// `FltDetachVolume` (or `fltmc detach`) does. Filter Manager first asks the filter's
    /// `InstanceQueryTeardown` (`PASSIVE_LEVEL`); a filter that registered none cannot be detached
    /// manually ("If a minifilter driver does not define an `InstanceQueryTeardownCallback` routine,
    /// its instances cannot be detached manually"), and an error status from it keeps the instance.
    /// Otherwise the instance is torn down as at unload, with reason
    /// `FLTFL_INSTANCE_TEARDOWN_MANUAL`: `InstanceTeardownStart`; no new operation reaches the
    /// instance; a wait for the operations in flight and for the instance's `FltObjectReference`
    /// references (traced as `instance teardown waits for ...` and `instance teardown: the rundown
    /// waits for ...`); `InstanceTeardownComplete`; the instance's contexts go. Returns when the
    /// teardown is complete.
    ///
    /// Unlike `FltUnregisterFilter`, a detach does not release [`World::hold_delays`]: a test that
    /// parked a worker in a held delay releases it itself, for instance once the rundown wait
    /// is traced (the worker then runs on after `InstanceTeardownStart` has returned).
    ///
    /// # Errors
    /// `STATUS_FLT_INSTANCE_NOT_FOUND` when `name` has no live instance on `letter` (documented for
    /// `FltDetachVolume`); `STATUS_FLT_DO_NOT_DETACH` when the filter has no
    /// `InstanceQueryTeardown`; the status `InstanceQueryTeardown` returned when it refuses.
    pub fn detach(&self, name: &str, letter: char) -> Result<(), NtStatus> {
        let found = {
            let state = self.kernel.lock();
            state
                .instances
                .iter()
                .position(|i| {
                    !i.torn_down
                        && state.filters[i.filter].loaded
                        && state.filters[i.filter].name == name
                        && state.volumes[i.volume].letter == letter
                })
                .map(|i| {
                    let filter = state.instances[i].filter;
                    (i, filter, state.filters[filter].query_teardown)
                })
        };
        self.kernel
            .trace(EventKind::User, format!("fltmc detach {name} {letter}:"));
        let Some((instance, filter, query)) = found else {
            return Err(NtStatus(STATUS_FLT_INSTANCE_NOT_FOUND));
        };
        let Some(query) = query else {
            return Err(NtStatus(STATUS_FLT_DO_NOT_DETACH));
        };
        let volume = self.kernel.lock().instances[instance].volume;
        let objects = FLT_RELATED_OBJECTS {
            Size: u16::try_from(std::mem::size_of::<FLT_RELATED_OBJECTS>()).expect("small"),
            TransactionContext: 0,
            Filter: filter_handle(filter),
            Volume: volume_handle(volume),
            Instance: instance_handle(instance),
            FileObject: std::ptr::null(),
            Transaction: std::ptr::null(),
        };
        self.kernel.trace(
            EventKind::Callback("InstanceQueryTeardown"),
            format!("InstanceQueryTeardown -> {name} volume {letter}:"),
        );
        let frame = Frame {
            filter: Some(filter),
            who: name.to_owned(),
            what: "InstanceQueryTeardown".into(),
        };
        // SAFETY: calling the registered query-teardown callback with valid related objects and
        // no flags ("No flags are currently defined"), as Filter Manager does for a manual detach.
        let status = run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
            query(&raw const objects, 0)
        });
        // "If this routine returns an error or warning NTSTATUS code", both negative.
        if !NtStatus(status).is_success() {
            return Err(NtStatus(status));
        }
        teardown_instance(&self.kernel, instance, FLTFL_INSTANCE_TEARDOWN_MANUAL);
        Ok(())
    }

    /// Unloads a filter, as `fltmc unload` does: calls its `FilterUnloadCallback` at
    /// `PASSIVE_LEVEL`, which must call `FltUnregisterFilter`, then checks that the filter left
    /// nothing behind.
    ///
    /// # Errors
    /// `STATUS_FLT_DO_NOT_DETACH` when the filter has no unload callback; otherwise the status
    /// the unload callback returned to refuse the unload.
    pub fn unload(&self, name: &str) -> Result<(), NtStatus> {
        let (index, unload) = {
            let state = self.kernel.lock();
            let index = state
                .filters
                .iter()
                .position(|f| f.name == name && f.loaded)
                .unwrap_or_else(|| panic!("unload: no loaded filter named {name}"));
            (index, state.filters[index].unload)
        };
        self.kernel
            .trace(EventKind::User, format!("fltmc unload {name}"));
        let Some(unload) = unload else {
            return Err(NtStatus(STATUS_FLT_DO_NOT_DETACH));
        };
        let frame = Frame {
            filter: Some(index),
            who: name.to_owned(),
            what: "FilterUnloadCallback".into(),
        };
        // SAFETY: calling the registered unload callback with flags 0 (a non-mandatory unload).
        let status = run_as(frame, irql::PASSIVE_LEVEL, || unsafe { unload(0) });
        if !NtStatus(status).is_success() {
            return Err(NtStatus(status));
        }
        let unregistered = {
            let mut state = self.kernel.lock();
            state.filters[index].loaded = false;
            state.filters[index].unregistered
        };
        self.loaded
            .lock()
            .expect("loaded list")
            .retain(|i| *i != index);
        if !unregistered {
            self.kernel.violation(format!(
                "{name}: the unload callback returned success without calling FltUnregisterFilter"
            ));
        }
        crate::verifier::check_leaks(&self.kernel, index);
        crate::registry::check_leaks(&self.kernel, index, name);
        Ok(())
    }

    /// Loads the model's counting filter (see [`Counts`]) at `altitude`.
    pub fn load_counting_filter(&self, name: &str, altitude: u32) {
        self.load(name, altitude, crate::counting::driver_entry)
            .expect("the counting filter loads");
    }

    /// What the counting filter called `name` has seen so far.
    #[must_use]
    pub fn counts(&self, name: &str) -> Counts {
        let state = self.kernel.lock();
        let index = state
            .filters
            .iter()
            .position(|f| f.name == name)
            .expect("no such counting filter");
        state.counters.get(&index).cloned().unwrap_or_default()
    }
}

/// Instance setup for one filter on every volume; called by `FltStartFiltering`.
pub(crate) fn attach_instances(k: &Arc<Kernel>, filter: usize) {
    let (volumes, setup, name, altitude) = {
        let state = k.lock();
        let f = &state.filters[filter];
        (
            state.volumes.len(),
            f.instance_setup,
            f.name.clone(),
            f.altitude,
        )
    };
    for volume in 0..volumes {
        let instance = {
            let mut state = k.lock();
            state.instances.push(InstanceRec {
                filter,
                volume,
                altitude,
                data_scan: false,
                torn_down: true,
                in_flight: 0,
                object_refs: 0,
            });
            state.instances.len() - 1
        };
        let status = match setup {
            None => STATUS_SUCCESS,
            Some(setup) => {
                let (fs_type, device_type, letter) = {
                    let state = k.lock();
                    let v = &state.volumes[volume];
                    (v.fs_type, v.device_type, v.letter)
                };
                let objects = FLT_RELATED_OBJECTS {
                    Size: std::mem::size_of::<FLT_RELATED_OBJECTS>() as u16,
                    TransactionContext: 0,
                    Filter: filter_handle(filter),
                    Volume: volume_handle(volume),
                    Instance: instance_handle(instance),
                    FileObject: std::ptr::null(),
                    Transaction: std::ptr::null(),
                };
                k.trace(
                    EventKind::Callback("InstanceSetup"),
                    format!("InstanceSetup -> {name} volume {letter}:"),
                );
                let frame = Frame {
                    filter: Some(filter),
                    who: name.clone(),
                    what: "InstanceSetup".into(),
                };
                // SAFETY: calling the registered instance setup callback with valid objects, as
                // Filter Manager does for automatic attachment.
                let status = run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
                    setup(
                        &raw const objects,
                        FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
                        device_type,
                        fs_type,
                    )
                });
                k.trace(
                    EventKind::Callback("InstanceSetup"),
                    format!(
                        "InstanceSetup <- {name} volume {letter}: {}",
                        NtStatus(status)
                    ),
                );
                status
            }
        };
        if NtStatus(status).is_success() {
            k.lock().instances[instance].torn_down = false;
        } else {
            crate::context_refs::detach_instance_contexts(k, instance);
        }
    }
}

/// Tears `instance` down, as Filter Manager does for an unload (`reason`
/// `FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD`) or a manual detach (`FLTFL_INSTANCE_TEARDOWN_MANUAL`):
/// `InstanceTeardownStart`, then the wait for the operations in flight and the instance's
/// `FltObjectReference` references, then `InstanceTeardownComplete`, then the instance's contexts.
pub(crate) fn teardown_instance(k: &Arc<Kernel>, instance: usize, reason: u32) {
    let (filter, name, start_cb, complete_cb, volume) = {
        let state = k.lock();
        let i = &state.instances[instance];
        let f = &state.filters[i.filter];
        (
            i.filter,
            f.name.clone(),
            f.teardown_start,
            f.teardown_complete,
            i.volume,
        )
    };
    let objects = FLT_RELATED_OBJECTS {
        Size: std::mem::size_of::<FLT_RELATED_OBJECTS>() as u16,
        TransactionContext: 0,
        Filter: filter_handle(filter),
        Volume: crate::state::volume_handle(volume),
        Instance: instance_handle(instance),
        FileObject: std::ptr::null(),
        Transaction: std::ptr::null(),
    };
    if let Some(cb) = start_cb {
        let frame = Frame {
            filter: Some(filter),
            who: name.clone(),
            what: "InstanceTeardownStart".into(),
        };
        k.trace(
            EventKind::Callback("InstanceTeardownStart"),
            format!("InstanceTeardownStart -> {name}"),
        );
        // SAFETY: calling the registered teardown callback with valid related objects.
        run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
            cb(&raw const objects, reason);
        });
    }
    // No new operations reach the instance; wait for the ones in flight (rundown).
    let (in_flight, refs) = {
        let mut state = k.lock();
        state.instances[instance].torn_down = true;
        (
            state.instances[instance].in_flight,
            state.instances[instance].object_refs,
        )
    };
    if in_flight > 0 {
        k.trace(
            EventKind::FltMgr,
            format!("instance teardown waits for {in_flight} operation(s) in flight"),
        );
    }
    if refs > 0 {
        k.trace(
            EventKind::FltMgr,
            format!(
                "instance teardown: the rundown waits for {refs} FltObjectReference reference(s)"
            ),
        );
    }
    let start = crate::sched::now();
    while k.lock().instances[instance].in_flight > 0 || k.lock().instances[instance].object_refs > 0
    {
        if crate::sched::since(start) > crate::sync::HANG_TIMEOUT {
            let limit = crate::sync::HANG_TIMEOUT;
            k.violation(format!(
                "{name}: instance teardown waited {limit:?} for in-flight I/O or FltObjectReference references"
            ));
            break;
        }
        crate::sched::sleep(std::time::Duration::from_millis(1));
    }
    if let Some(cb) = complete_cb {
        let frame = Frame {
            filter: Some(filter),
            who: name.clone(),
            what: "InstanceTeardownComplete".into(),
        };
        k.trace(
            EventKind::Callback("InstanceTeardownComplete"),
            format!("InstanceTeardownComplete -> {name}"),
        );
        // SAFETY: as above.
        run_as(frame, irql::PASSIVE_LEVEL, || unsafe {
            cb(&raw const objects, reason);
        });
    }
    crate::context_refs::detach_instance_contexts(k, instance);
}
