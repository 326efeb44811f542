# Fails the build when a core-library file includes libpq or libuv: the core must stay testable
# without a server or an event loop.
string(REPLACE "," ";" FILES "${FILES}")
foreach(f IN LISTS FILES)
  file(STRINGS "${SOURCE_DIR}/${f}" hits REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](libpq-fe\\.h|libpq/.*|uv\\.h|uv/.*|pg\\.hpp|catalog\\.hpp)[>\"]")
  if(hits)
    message(FATAL_ERROR "${f} is in the pure core library but includes: ${hits}\n"
                        "Move the code that needs libpq/libuv into the I/O layer (see docs/ARCHITECTURE.md).")
  endif()
endforeach()
