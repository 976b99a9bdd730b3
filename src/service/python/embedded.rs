//! The `rpycd` Python package (`src/service/python/rpycd/`), built into the
//! binaries: a finder on `sys.meta_path` imports its modules from the
//! sources embedded here. They are the same modules, under the same names
//! and with the same imports between them, as tests/pyunit imports from
//! the files themselves.

use std::ffi::CString;

use pyo3::exceptions::{PyImportError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::code::PyCodeInput;
use pyo3::types::{PyCode, PyCodeMethods, PyDict, PyModule};

/// The package's name.
const PACKAGE: &str = "rpycd";

/// Every module of the package, by name, with its source.
const MODULES: &[(&str, &str)] = &[
    ("rpycd", include_str!("rpycd/__init__.py")),
    ("rpycd.authenticate", include_str!("rpycd/authenticate.py")),
    ("rpycd.classic", include_str!("rpycd/classic.py")),
    ("rpycd.consts", include_str!("rpycd/consts.py")),
    ("rpycd.handlers", include_str!("rpycd/handlers.py")),
    ("rpycd.introspect", include_str!("rpycd/introspect.py")),
    ("rpycd.netref", include_str!("rpycd/netref.py")),
    ("rpycd.remote", include_str!("rpycd/remote.py")),
    ("rpycd.serve", include_str!("rpycd/serve.py")),
    ("rpycd.service", include_str!("rpycd/service.py")),
    ("rpycd.vinegar", include_str!("rpycd/vinegar.py")),
];

fn source(name: &str) -> Option<&'static str> {
    MODULES
        .iter()
        .find(|(module, _)| *module == name)
        .map(|(_, source)| *source)
}

/// Where a module's code says it comes from (its `__file__`, and the file
/// its tracebacks name): its path under `src/service`.
fn file_name(name: &str) -> String {
    if name == PACKAGE {
        format!("{PACKAGE}/__init__.py")
    } else {
        format!("{}.py", name.replace('.', "/"))
    }
}

/// The finder and loader of the embedded modules (importlib's protocol:
/// `find_spec`, then `create_module` and `exec_module`).
#[pyclass(frozen, module = "rpycd")]
struct EmbeddedModules;

#[pymethods]
impl EmbeddedModules {
    #[pyo3(signature = (fullname, path=None, target=None))]
    fn find_spec<'py>(
        slf: &Bound<'py, Self>,
        fullname: &str,
        path: Option<&Bound<'py, PyAny>>,
        target: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let _ = (path, target);
        if source(fullname).is_none() {
            return Ok(None);
        }
        let py = slf.py();
        let kwargs = PyDict::new(py);
        kwargs.set_item("origin", file_name(fullname))?;
        kwargs.set_item("is_package", fullname == PACKAGE)?;
        let spec = py
            .import("importlib.machinery")?
            .getattr("ModuleSpec")?
            .call((fullname, slf), Some(&kwargs))?;
        Ok(Some(spec))
    }

    /// The default module (`None`): importlib makes it from the spec.
    fn create_module(&self, _spec: &Bound<'_, PyAny>) {}

    fn exec_module(&self, module: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = module.py();
        let name = module.name()?.to_string();
        let source =
            source(&name).ok_or_else(|| PyImportError::new_err(format!("no module {name}")))?;
        let file = file_name(&name);
        let as_c =
            |text: &str| CString::new(text).map_err(|e| PyValueError::new_err(e.to_string()));
        module.setattr("__file__", &file)?;
        let code = PyCode::compile(py, &as_c(source)?, &as_c(&file)?, PyCodeInput::File)?;
        code.run(Some(&module.dict()), None)?;
        Ok(())
    }
}

/// Puts the finder first on `sys.meta_path` (once), so that `import
/// rpycd.<module>` finds the embedded modules.
pub(super) fn install(py: Python<'_>) -> PyResult<()> {
    let meta_path = py.import("sys")?.getattr("meta_path")?;
    for finder in meta_path.try_iter()? {
        if finder?.is_instance_of::<EmbeddedModules>() {
            return Ok(());
        }
    }
    meta_path.call_method1("insert", (0, Bound::new(py, EmbeddedModules)?))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module added to src/service/python/rpycd must be listed in `MODULES`,
    /// or the binaries cannot import it.
    #[test]
    fn every_module_of_the_package_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/service/python/rpycd");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".py"))
            .collect();
        files.sort();
        let mut embedded: Vec<String> = MODULES
            .iter()
            .map(|(name, _)| file_name(name).trim_start_matches("rpycd/").to_string())
            .collect();
        embedded.sort();
        assert_eq!(files, embedded);
    }

    #[test]
    fn file_names_are_paths_in_the_package() {
        assert_eq!(file_name("rpycd"), "rpycd/__init__.py");
        assert_eq!(file_name("rpycd.netref"), "rpycd/netref.py");
    }
}
