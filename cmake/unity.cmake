# oc_unity(OUT_VAR NAME SOURCES...): the sources in batches of 8, each batch one generated .cpp
# in <binary dir>/unity/ that #includes its members by paths relative to itself.
#
# Why batches: the files share heavy headers (Eigen, nlohmann-json, onnx protobuf, Catch), whose
# parsing was most of each file's compile time; parsed once per batch, a cold build takes about
# 60% of the CPU time. Why not CMake's UNITY_BUILD: its generated files #include absolute paths,
# so a copy of the tree (tests/mutation_check.sh) hashes differently in ccache and rebuilds
# everything; relative paths keep the copy's objects cache hits.
# Sources with SKIP_UNITY_BUILD_INCLUSION set stay separate. The sanitizer build compiles file by
# file: under ASan instrumentation GCC took twice as long on the batches as on their files (CI's
# ASan build, 2 cores: over 28 min against about 13).
function(oc_unity out_var name)
  if(OC_SANITIZE)
    set(${out_var} ${ARGN} PARENT_SCOPE)
    return()
  endif()
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/unity)
  set(batches)
  set(single)
  set(content "")
  set(count 0)
  set(index 0)
  foreach(src ${ARGN})
    get_source_file_property(skip ${src} SKIP_UNITY_BUILD_INCLUSION)
    if(skip)
      list(APPEND single ${src})
      continue()
    endif()
    file(RELATIVE_PATH rel ${dir} ${src})
    string(APPEND content "#include \"${rel}\"\n")
    math(EXPR count "${count} + 1")
    if(count EQUAL 8)
      file(CONFIGURE OUTPUT ${dir}/${name}_${index}.cpp CONTENT "${content}" @ONLY)
      list(APPEND batches ${dir}/${name}_${index}.cpp)
      math(EXPR index "${index} + 1")
      set(content "")
      set(count 0)
    endif()
  endforeach()
  if(count GREATER 0)
    file(CONFIGURE OUTPUT ${dir}/${name}_${index}.cpp CONTENT "${content}" @ONLY)
    list(APPEND batches ${dir}/${name}_${index}.cpp)
  endif()
  set(${out_var} ${batches} ${single} PARENT_SCOPE)
endfunction()
