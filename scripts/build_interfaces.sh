#!/usr/bin/env bash
# Build interfaces/vision_msgs against the ROS 2 Jazzy PyPI wheels in a venv and
# install it into that venv, so that `import vision_msgs.msg` works in the venv's
# python with no sourcing and no environment variables.
#
#   usage: scripts/build_interfaces.sh VENV_DIR
#
# - Idempotent: exits at once if VENV_DIR's python can already import vision_msgs.msg.
# - pip-installs the pinned build-time wheels (requirements-interfaces.txt) into the venv.
# - Configures/builds with plain cmake (no colcon) in build/interfaces/, installs with
#   CMAKE_INSTALL_PREFIX=VENV_DIR: the same layout the wheels use (VENV/lib/lib*.so,
#   VENV/lib/python3.X/site-packages/<pkg>, VENV/share/<pkg>, VENV/include/<pkg>).
#   ros_wheels_bootstrapper.pth re-execs python with LD_LIBRARY_PATH=VENV/lib, which
#   is how rclpy finds the generated type support libraries at run time.
#
# Needs: cmake >= 3.21, a C/C++ compiler, Python headers for the venv's python.
# On a real ROS install use `apt install ros-jazzy-vision-msgs` instead of this.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 VENV_DIR" >&2
  exit 2
fi
[[ -d "$1" ]] || { echo "error: venv dir '$1' does not exist" >&2; exit 2; }

VENV_DIR="$(cd "$1" && pwd -P)"
PY="$VENV_DIR/bin/python"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PKG_SRC="$REPO_ROOT/interfaces/vision_msgs"
REQS="$REPO_ROOT/requirements-interfaces.txt"

[[ -x "$PY" ]] || { echo "error: $PY not found (is '$1' a virtualenv?)" >&2; exit 2; }

# Never let a sourced ROS install (or a stray PYTHONPATH) leak into the check or the build.
unset PYTHONPATH CMAKE_PREFIX_PATH AMENT_PREFIX_PATH COLCON_PREFIX_PATH ROS_PACKAGE_PATH || true

# Run the venv's python from a neutral cwd (so no ./vision_msgs folder can shadow the install).
vpy() { (cd / && "$PY" "$@"); }

if vpy -c "import vision_msgs.msg; vision_msgs.msg.Detection2DArray" >/dev/null 2>&1; then
  echo "vision_msgs already importable in $VENV_DIR: nothing to do."
  exit 0
fi

for tool in cmake cc c++; do
  command -v "$tool" >/dev/null || { echo "error: '$tool' not found (apt-get install cmake g++)" >&2; exit 1; }
done

# The include-dir fixup hook below needs cmake_language(DEFER) and IMPORTED_TARGETS (3.21).
CMAKE_VER="$(cmake --version | awk 'NR==1{print $3}')"
if ! printf '3.21\n%s\n' "$CMAKE_VER" | sort -V -C; then
  echo "error: cmake >= 3.21 required, found $CMAKE_VER (pip install cmake, or apt-get install cmake)" >&2
  exit 1
fi

T0=$SECONDS
KEY="$(printf '%s' "$VENV_DIR" | sha1sum | cut -c1-10)"
BUILD_ROOT="$REPO_ROOT/build/interfaces"
BUILD_DIR="$BUILD_ROOT/vision_msgs-$KEY"
mkdir -p "$BUILD_ROOT"
[[ -f "$BUILD_ROOT/.gitignore" ]] || printf '*\n' > "$BUILD_ROOT/.gitignore"
rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR"
LOG="$BUILD_DIR/log"
mkdir -p "$LOG"

# Print the tail of a log and fail.
fail() { echo "error: $1 failed; last lines of $2:" >&2; tail -n 60 "$2" >&2; exit 1; }

echo "==> [1/4] pip install build-time wheels from $(basename "$REQS")"
if ! "$PY" -m pip install --disable-pip-version-check -r "$REQS" >"$LOG/pip.txt" 2>&1; then
  fail "pip install" "$LOG/pip.txt"
fi
grep -E '^Successfully installed' "$LOG/pip.txt" | cut -c1-400 || echo "    (all already installed)"

# Python/numpy include dirs of *this* venv. The wheels' exported
# <pkg>__rosidl_generator_py CMake targets point at their builder's
# /opt/python/cp311-cp311/include/python3.11 and .../numpy/_core/include,
# which CMake rejects at generate time ("includes non-existent path").
PY_INC="$(vpy -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INC="$(vpy -c 'import numpy; print(numpy.get_include())')"
[[ -f "$PY_INC/Python.h" ]] || { echo "error: Python.h not found in $PY_INC (install the python dev headers)" >&2; exit 1; }
[[ -d "$NP_INC" ]] || { echo "error: numpy include dir $NP_INC missing" >&2; exit 1; }

# CMake hook (CMAKE_PROJECT_INCLUDE): at the end of the top-level directory, i.e. after
# every find_package() and before generation, rewrite non-existent Python/numpy include
# dirs of imported targets to this venv's. The wheels' installed files stay untouched.
HOOK="$BUILD_DIR/fix_wheel_python_includes.cmake"
cat >"$HOOK" <<'EOF'
function(_ivf_fix_wheel_python_includes)
  get_directory_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
  set(_n 0)
  foreach(_t IN LISTS _targets)
    foreach(_prop INTERFACE_INCLUDE_DIRECTORIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES)
      get_target_property(_dirs ${_t} ${_prop})
      if(NOT _dirs)
        continue()
      endif()
      set(_new "")
      set(_changed FALSE)
      foreach(_d IN LISTS _dirs)
        if(NOT _d MATCHES "^\\$<" AND NOT EXISTS "${_d}")
          if(_d MATCHES "/include/python3\\.[0-9]+$")
            message(STATUS "[wheel-fixup] ${_t}: ${_d} -> ${IVF_PYTHON_INCLUDE_DIR}")
            set(_d "${IVF_PYTHON_INCLUDE_DIR}")
            set(_changed TRUE)
          elseif(_d MATCHES "/numpy/(_core/|core/)?include$")
            message(STATUS "[wheel-fixup] ${_t}: ${_d} -> ${IVF_NUMPY_INCLUDE_DIR}")
            set(_d "${IVF_NUMPY_INCLUDE_DIR}")
            set(_changed TRUE)
          endif()
        endif()
        list(APPEND _new "${_d}")
      endforeach()
      if(_changed)
        list(REMOVE_DUPLICATES _new)
        set_target_properties(${_t} PROPERTIES ${_prop} "${_new}")
        math(EXPR _n "${_n} + 1")
      endif()
    endforeach()
  endforeach()
  message(STATUS "[wheel-fixup] repointed include dirs of ${_n} imported target(s)")
endfunction()
if(CMAKE_CURRENT_SOURCE_DIR STREQUAL CMAKE_SOURCE_DIR)
  cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _ivf_fix_wheel_python_includes)
endif()
EOF

echo "==> [2/4] cmake configure ($BUILD_DIR)"
export AMENT_PREFIX_PATH="$VENV_DIR"   # build-time only (ament index lookups of typesupports)
if ! cmake -S "$PKG_SRC" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_TESTING=OFF \
    -DCMAKE_PREFIX_PATH="$VENV_DIR" \
    -DCMAKE_INSTALL_PREFIX="$VENV_DIR" \
    -DPython3_EXECUTABLE="$PY" \
    -DPython3_FIND_VIRTUALENV=ONLY \
    -DIVF_PYTHON_INCLUDE_DIR="$PY_INC" \
    -DIVF_NUMPY_INCLUDE_DIR="$NP_INC" \
    -DCMAKE_PROJECT_INCLUDE="$HOOK" \
    >"$LOG/configure.txt" 2>&1; then
  fail "cmake configure" "$LOG/configure.txt"
fi
grep -F '[wheel-fixup]' "$LOG/configure.txt" | sed 's/^-- /    /' || true

echo "==> [3/4] cmake build (-j2)"
if ! cmake --build "$BUILD_DIR" -j2 >"$LOG/build.txt" 2>&1; then
  grep -nE 'error|Error' "$LOG/build.txt" | head -n 30 >&2 || true
  fail "cmake build" "$LOG/build.txt"
fi

echo "==> [4/4] cmake install -> $VENV_DIR"
if ! cmake --install "$BUILD_DIR" >"$LOG/install.txt" 2>&1; then
  fail "cmake install" "$LOG/install.txt"
fi
echo "    $(grep -cE '^-- (Installing|Up-to-date)' "$LOG/install.txt") files installed"

# Smoke test in a fresh interpreter: import + CDR round trip (loads the C type support).
if ! vpy - >"$LOG/check.txt" 2>&1 <<'EOF'
from rclpy.serialization import serialize_message, deserialize_message
from vision_msgs.msg import Detection2DArray, Detection2D, ObjectHypothesisWithPose
m = Detection2DArray()
d = Detection2D()
h = ObjectHypothesisWithPose()
h.hypothesis.class_id = "person"
h.hypothesis.score = 0.5
d.results.append(h)
d.bbox.center.position.x = 1.0
m.detections.append(d)
assert deserialize_message(serialize_message(m), Detection2DArray) == m
print("ok")
EOF
then
  fail "post-install check" "$LOG/check.txt"
fi
echo "vision_msgs built and installed into $VENV_DIR in $((SECONDS - T0))s (logs: $LOG)"
