# Runs promtool on deploy/prometheus (ctest: promtool_rules, promtool_config).
#   cmake -DPROMTOOL=/usr/bin/promtool -DDIR=<source>/deploy/prometheus -DMODE=rules|config -P promtool.cmake
# A missing promtool fails the test instead of skipping it: the alerts would go unchecked.
if(NOT PROMTOOL)
  # Configured before promtool was installed: look again now.
  unset(PROMTOOL)
  find_program(PROMTOOL promtool)
endif()
if(NOT PROMTOOL)
  message(FATAL_ERROR "promtool not found: run scripts/install-deps (it installs the Debian package "
                      "`prometheus`, which provides promtool), then run this test again")
endif()

function(promtool)
  execute_process(COMMAND ${PROMTOOL} ${ARGN} WORKING_DIRECTORY ${DIR} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "promtool ${ARGN} failed (exit ${rc}) in ${DIR}")
  endif()
endfunction()

if(MODE STREQUAL "rules")
  promtool(check rules alerts.yml)
  promtool(test rules alerts_test.yml)
elseif(MODE STREQUAL "config")
  promtool(check config prometheus.yml)
else()
  message(FATAL_ERROR "MODE must be rules or config, not '${MODE}'")
endif()
