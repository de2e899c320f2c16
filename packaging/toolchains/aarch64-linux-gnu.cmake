# Cross-compiling sluice for Debian arm64 on an x86_64 Debian 12, with
# Debian's cross compiler and the arm64 -dev packages installed through
# multiarch (packaging/scripts/install-cross-deps.sh arm64):
#   cmake -S . -B build-deb-arm64 -G Ninja \
#     --toolchain packaging/toolchains/aarch64-linux-gnu.cmake -DCMAKE_INSTALL_PREFIX=/usr
# The target's binaries (tests, catch_discover_tests) run under qemu-user:
# binfmt_misc may not be registered, so CMake calls qemu explicitly.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(SLUICE_CROSS_TRIPLET aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${SLUICE_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${SLUICE_CROSS_TRIPLET}-g++)
# A bare name is not found by FindPkgConfig: give the full path.
set(PKG_CONFIG_EXECUTABLE /usr/bin/${SLUICE_CROSS_TRIPLET}-pkg-config CACHE FILEPATH "pkg-config for the target")
# `-L /`: the target's glibc is the multiarch libc6:arm64 in /lib/aarch64-linux-gnu.
# The cross toolchain's own copy under /usr/aarch64-linux-gnu is another
# Debian revision; its loader with the multiarch libc hangs every program
# that starts a thread (seen with qemu 7.2, glibc 2.36-8cross1 vs 2.36-9).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static;-L;/)

# Multiarch: the target's libraries live in /usr/lib/aarch64-linux-gnu of
# this very system (no separate sysroot). Programs come from the build
# machine; libraries, headers and CMake packages from the target's paths,
# which CMake derives from CMAKE_LIBRARY_ARCHITECTURE.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
