# Cross-compiling sluice for Debian armhf (ARMv7, hard float) on an x86_64 Debian 12, with
# Debian's cross compiler and the armhf -dev packages installed through
# multiarch (packaging/scripts/install-cross-deps.sh armhf):
#   cmake -S . -B build-deb-armhf -G Ninja \
#     --toolchain packaging/toolchains/arm-linux-gnueabihf.cmake -DCMAKE_INSTALL_PREFIX=/usr
# The target's binaries (tests, catch_discover_tests) run under qemu-user:
# binfmt_misc may not be registered, so CMake calls qemu explicitly.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(SLUICE_CROSS_TRIPLET arm-linux-gnueabihf)

set(CMAKE_C_COMPILER ${SLUICE_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${SLUICE_CROSS_TRIPLET}-g++)
# A bare name is not found by FindPkgConfig: give the full path.
set(PKG_CONFIG_EXECUTABLE /usr/bin/${SLUICE_CROSS_TRIPLET}-pkg-config CACHE FILEPATH "pkg-config for the target")
# `-L /`: the multiarch libc6:armhf, as for arm64 (see aarch64-linux-gnu.cmake).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm-static;-L;/)

# Multiarch: the target's libraries live in /usr/lib/arm-linux-gnueabihf of
# this very system (no separate sysroot). Programs come from the build
# machine; libraries, headers and CMake packages from the target's paths,
# which CMake derives from CMAKE_LIBRARY_ARCHITECTURE.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
