# Fails the build when a core-library file includes libpq or libuv, directly or through a project
# header that is not itself in the core: the core must stay testable without a server or an event
# loop. FILES lists every core source and header (relative to SOURCE_DIR), joined with ",".
cmake_policy(SET CMP0057 NEW)  # if(IN_LIST) in script mode
string(REPLACE "," ";" FILES "${FILES}")
foreach(f IN LISTS FILES)
  file(STRINGS "${SOURCE_DIR}/${f}" hits REGEX "^[ \t]*#[ \t]*include[ \t]*<(libpq-fe\\.h|libpq/.*|uv\\.h|uv/.*)>")
  if(hits)
    message(FATAL_ERROR "${f} is in the pure core library but includes: ${hits}\n"
                        "Move the code that needs libpq/libuv into the I/O layer (see docs/ARCHITECTURE.md).")
  endif()
  # A project header ("x.hpp") must be a core header too, or it could bring libpq/libuv in.
  file(STRINGS "${SOURCE_DIR}/${f}" local REGEX "^[ \t]*#[ \t]*include[ \t]*\"[^\"]+\"")
  get_filename_component(dir "${f}" DIRECTORY)
  foreach(line IN LISTS local)
    string(REGEX REPLACE "^[^\"]*\"([^\"]+)\".*$" "\\1" header "${line}")
    if(NOT "${dir}/${header}" IN_LIST FILES)
      message(FATAL_ERROR "${f} is in the pure core library but includes \"${header}\", which is not a core header.\n"
                          "Either add ${dir}/${header} to PGFERRY_CORE_HEADERS in CMakeLists.txt (if it needs neither libpq nor libuv) "
                          "or move the code that needs it into the I/O layer (see docs/ARCHITECTURE.md).")
    endif()
  endforeach()
endforeach()
