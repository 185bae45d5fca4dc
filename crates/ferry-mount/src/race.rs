//! Named windows where a hostile writer could act between two steps of
//! ferry (a check and the action it guards, a rename and the cleanup after
//! it). Unit tests stage such a race deterministically by running code in
//! a window; outside tests a window is a no-op.

/// Marks the window `name`; `entry` is the name being worked on, if any.
#[inline]
pub(crate) fn window(name: &'static str, entry: &std::ffi::OsStr) {
    #[cfg(test)]
    staged::run(name, entry);
    #[cfg(not(test))]
    let _ = (name, entry);
}

#[cfg(test)]
pub(crate) mod staged {
    use std::cell::RefCell;
    use std::ffi::OsStr;

    type Action = Box<dyn FnMut(&OsStr)>;

    thread_local! {
        static STAGED: RefCell<Vec<(&'static str, Action)>> = RefCell::new(Vec::new());
    }

    /// Runs `action` in every later `window(name, ..)` of this thread,
    /// until the returned guard is dropped.
    pub(crate) fn stage(name: &'static str, action: impl FnMut(&OsStr) + 'static) -> Staged {
        STAGED.with(|s| s.borrow_mut().push((name, Box::new(action))));
        Staged
    }

    pub(crate) struct Staged;

    impl Drop for Staged {
        fn drop(&mut self) {
            STAGED.with(|s| s.borrow_mut().clear());
        }
    }

    pub(super) fn run(name: &'static str, entry: &OsStr) {
        // Taken out while it runs, so an action may itself reach a window.
        let taken = STAGED.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let mut taken = taken;
        for (staged, action) in taken.iter_mut() {
            if *staged == name {
                action(entry);
            }
        }
        STAGED.with(|s| {
            let mut s = s.borrow_mut();
            taken.append(&mut s);
            *s = taken;
        });
    }
}
