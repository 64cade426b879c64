# Header copies at a path that does not change between builds.
#
# pip builds every install in a new isolated environment (/tmp/pip-build-env-XXXX), so the
# pybind11 and Eigen headers of the build requirements sit at a new path each time. In the reused
# build folder (build-dir in pyproject.toml) Ninja then rebuilds every object: the header paths in
# its dependency log no longer exist, and the -isystem flags of every compile command differ. The
# kernels are therefore compiled against copies inside the build folder. A copy is rewritten only
# when its content differs (file(COPY_FILE ... ONLY_IF_DIFFERENT) leaves an identical file, and its
# timestamp, alone), so an unchanged pybind11 or Eigen reuses the objects, and a different release
# rewrites the headers it changed, which rebuilds the objects that include them.

# fastelbo_stable_includes(<imported target> <name>): copy each include folder of <target> into
# <build folder>/stable-include/<name> (<name>-2, ... for further folders) and point the target's
# INTERFACE_INCLUDE_DIRECTORIES at the copies, so that no compile command names the original.
function(fastelbo_stable_includes target name)
  get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT dirs)
    return()
  endif()
  set(staged "")
  set(count 0)
  foreach(dir IN LISTS dirs)
    if(dir MATCHES "\\$<" OR NOT IS_DIRECTORY "${dir}")  # a generator expression: left as it is
      list(APPEND staged "${dir}")
      continue()
    endif()
    math(EXPR count "${count} + 1")
    set(dest "${CMAKE_BINARY_DIR}/stable-include/${name}")
    if(count GREATER 1)
      string(APPEND dest "-${count}")
    endif()
    file(GLOB_RECURSE files LIST_DIRECTORIES false RELATIVE "${dir}" "${dir}/*")
    # Files the previous copy had and this release has not: removed, so that an #include of a
    # header the package dropped fails as it would against the package itself.
    file(GLOB_RECURSE stale LIST_DIRECTORIES false RELATIVE "${dest}" "${dest}/*")
    if(files)
      list(REMOVE_ITEM stale ${files})
    endif()
    foreach(file IN LISTS stale)
      file(REMOVE "${dest}/${file}")
    endforeach()
    set(made "")
    foreach(file IN LISTS files)
      get_filename_component(parent "${dest}/${file}" DIRECTORY)
      if(NOT parent IN_LIST made)
        file(MAKE_DIRECTORY "${parent}")
        list(APPEND made "${parent}")
      endif()
      file(COPY_FILE "${dir}/${file}" "${dest}/${file}" ONLY_IF_DIFFERENT)
    endforeach()
    list(APPEND staged "${dest}")
  endforeach()
  set_property(TARGET ${target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${staged}")
endfunction()
