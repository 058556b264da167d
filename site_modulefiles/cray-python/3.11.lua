-- Stand-in for HPE's cray-python on a host that is not a Cray system: a clean
-- Python 3.11 environment with only what cray-python brings (numpy, scipy,
-- mpi4py; pinned in site_modulefiles/cray-python/__standin-3.11.txt). `./bootstrap env`
-- makes it from the host's python3, beside the checkout, so no machine's path
-- is written here.
local version = "3.11"
local here = myFileName():match("^(.*)/[^/]*$")
local root = pathJoin(here, "..", "..", ".standin", "cray-python-" .. version)

whatis("Name: cray-python (stand-in)")
whatis("Version: " .. version)
whatis("Description: Python " .. version .. " with numpy, scipy and mpi4py, standing in for cray-python")
help([[
Stand-in for cray-python on a non-Cray host, made by stackgen's ./bootstrap.
]])

family("python")
if not isDir(root) then
  LmodError("the cray-python stand-in is not made yet (" .. root .. "): run ./bootstrap env")
end
prepend_path("PATH", pathJoin(root, "bin"))
setenv("CRAY_PYTHON_PREFIX", root)
