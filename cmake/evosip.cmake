# Helpers shared by every folder: one folder = one target, sources globbed so that adding a
# file needs no CMake edit.

# evosip_add_library(NAME DIR dir [PUBLIC_INCLUDE dir] [DEPS ...] [PCH headers...])
function(evosip_add_library name)
  cmake_parse_arguments(A "" "DIR;PUBLIC_INCLUDE" "DEPS;PCH" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${A_DIR}/*.cpp)
  if(NOT srcs)
    # A folder whose headers come first and sources later still links as a dependency.
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${A_PUBLIC_INCLUDE})
    target_link_libraries(${name} INTERFACE ${A_DEPS})
    return()
  endif()
  add_library(${name} STATIC ${srcs})
  if(A_PUBLIC_INCLUDE)
    target_include_directories(${name} PUBLIC ${A_PUBLIC_INCLUDE})
  endif()
  target_link_libraries(${name} PUBLIC ${A_DEPS})
  if(A_PCH)
    target_precompile_headers(${name} PRIVATE ${A_PCH})
  endif()
endfunction()

# evosip_add_test(NAME DIR dir DEPS ...): every *_test.cpp of DIR in one gtest binary.
function(evosip_add_test name)
  cmake_parse_arguments(A "" "DIR" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${A_DIR}/*_test.cpp ${A_DIR}/*/*_test.cpp)
  if(NOT srcs)
    return()
  endif()
  add_executable(${name} ${srcs})
  target_link_libraries(${name} PRIVATE ${A_DEPS} evosip_test_support GTest::gtest_main GTest::gmock)
  target_compile_definitions(${name} PRIVATE
    EVOSIP_TEST_DATA_DIR="${CMAKE_SOURCE_DIR}/tests/data")
  gtest_discover_tests(${name} TEST_PREFIX "${name}." PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)
endfunction()

# evosip_add_fuzzer(NAME SOURCE file DEPS ...): with EVOSIP_FUZZ a libFuzzer binary; otherwise a
# replay binary that runs every file of tests/fuzz/corpus/NAME as a regression test.
function(evosip_add_fuzzer name)
  cmake_parse_arguments(A "" "SOURCE" "DEPS" ${ARGN})
  add_executable(${name} ${A_SOURCE})
  target_link_libraries(${name} PRIVATE ${A_DEPS})
  if(EVOSIP_FUZZ)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    target_sources(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.cpp)
    add_test(NAME fuzz_replay_${name}
             COMMAND ${name} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${name})
    set_tests_properties(fuzz_replay_${name} PROPERTIES LABELS fuzz)
  endif()
endfunction()

# evosip_add_integration_test(FILE.py): a Python (stdlib unittest) test that starts the real
# binary and real peers. Runs serially: it binds ports and measures the wire.
function(evosip_add_integration_test file)
  get_filename_component(stem ${file} NAME_WE)
  add_test(NAME integration_${stem}
           COMMAND ${Python3_EXECUTABLE} -m unittest -v ${stem}
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/integration)
  set_tests_properties(integration_${stem} PROPERTIES
    LABELS integration RUN_SERIAL TRUE TIMEOUT 600
    ENVIRONMENT "EVOSIP_BIN=$<TARGET_FILE:evosip>;PYTHONDONTWRITEBYTECODE=1")
endfunction()
