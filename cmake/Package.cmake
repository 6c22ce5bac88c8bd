# Installation layout and the Debian package (`cpack -G DEB` in the build folder).
#
#   cmake --build build && (cd build && cpack -G DEB)      -> build/fedfuse_<ver>_<arch>.deb
#
# The package holds the program (/usr/bin/fedfuse), both systemd units (/lib/systemd/system,
# ExecStart pointing at /usr/bin), the documented example configs
# (/usr/share/doc/fedfuse/examples), man pages generated from the commands' --help text, and
# a postinst that creates the `fedfuse` system user and /etc/fedfuse. Depends is computed
# from the binary's shared libraries by dpkg-shlibdeps. docs/operations.md, "Install from
# the Debian package".
include(GNUInstallDirs)

install(TARGETS fedfuse RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Units name /usr/local/bin/fedfuse for a hand install (docs/operations.md §4); the package
# installs the program in /usr/bin.
foreach(unit fedfuse-client.service fedfuse-coordinator.service)
  file(READ ${PROJECT_SOURCE_DIR}/deploy/${unit} _txt)
  string(REPLACE "/usr/local/bin/fedfuse" "/usr/bin/fedfuse" _txt "${_txt}")
  string(REPLACE "file:///usr/local/share/doc/fedfuse/" "man:fedfuse(1)" _txt "${_txt}")
  string(REPLACE "operations.md" "" _txt "${_txt}")
  file(WRITE ${PROJECT_BINARY_DIR}/package/${unit} "${_txt}")
  install(FILES ${PROJECT_BINARY_DIR}/package/${unit} DESTINATION /lib/systemd/system)
endforeach()

# Example configs: every file fedfuse reads, documented (configs/), and the docs.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples
        FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                              WORLD_READ WORLD_EXECUTE)
install(FILES ${PROJECT_SOURCE_DIR}/docs/operations.md ${PROJECT_SOURCE_DIR}/docs/federation.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Man pages from the --help text: fedfuse(1) and fedfuse-COMMAND(1), gzipped, plus the
# Debian changelog and copyright lintian requires.
set(FF_MAN_DIR ${PROJECT_BINARY_DIR}/package/man)
add_custom_command(OUTPUT ${FF_MAN_DIR}/stamp
  COMMAND ${CMAKE_COMMAND} -E rm -rf ${FF_MAN_DIR}
  COMMAND sh ${PROJECT_SOURCE_DIR}/deploy/debian/gen-man.sh $<TARGET_FILE:fedfuse> ${FF_MAN_DIR}
  COMMAND ${CMAKE_COMMAND} -E touch ${FF_MAN_DIR}/stamp
  DEPENDS fedfuse ${PROJECT_SOURCE_DIR}/deploy/debian/gen-man.sh
  COMMENT "man pages from fedfuse --help")
add_custom_target(fedfuse_man ALL DEPENDS ${FF_MAN_DIR}/stamp)
install(DIRECTORY ${FF_MAN_DIR}/ DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
        FILES_MATCHING PATTERN "*.1.gz")

set(FF_CHANGELOG ${PROJECT_BINARY_DIR}/package/changelog.gz)
set(VERSION ${PROJECT_VERSION})
configure_file(${PROJECT_SOURCE_DIR}/deploy/debian/changelog.in ${PROJECT_BINARY_DIR}/package/changelog @ONLY)
add_custom_command(OUTPUT ${FF_CHANGELOG}
  COMMAND gzip -9nkf changelog
  WORKING_DIRECTORY ${PROJECT_BINARY_DIR}/package
  DEPENDS ${PROJECT_BINARY_DIR}/package/changelog)
add_custom_target(fedfuse_changelog ALL DEPENDS ${FF_CHANGELOG})
install(FILES ${FF_CHANGELOG} ${PROJECT_SOURCE_DIR}/deploy/debian/copyright
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME fedfuse)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CONTACT "fedfuse maintainers <fedfuse@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "federated multimodal learning for hospitals")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "Each hospital runs a client node that trains a fusion model (images, clinical\nnotes, event sequences) on its own patients; a coordinator combines the\nupdates with secure aggregation and differential privacy and keeps a signed\naudit log. This package holds the fedfuse program, its systemd units, man\npages and example configs.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.org/fedfuse")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/debian/postinst)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
# A build with the fault-injection hooks (FF_TEST_HOOKS, the test trees) must never become a
# package a hospital installs: cpack refuses it before building anything.
if(FF_TEST_HOOKS)
  set(FF_REFUSE_SCRIPT ${PROJECT_BINARY_DIR}/package/refuse-test-hooks.cmake)
  file(WRITE ${FF_REFUSE_SCRIPT}
       "message(FATAL_ERROR \"fedfuse: this build has the fault-injection test hooks "
       "(FF_TEST_HOOKS=ON) and must not be packaged; package a Release build: cmake -S . -B "
       "build-release -DCMAKE_BUILD_TYPE=Release -DFF_BUILD_TESTS=OFF\")\n")
  set(CPACK_PRE_BUILD_SCRIPTS ${FF_REFUSE_SCRIPT})
endif()
include(CPack)
