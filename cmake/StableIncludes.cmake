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

# fastelbo_stable_includes(<imported target> <name> <folder>...): for each include directory of
# <target> that holds one of the <folder>s (pybind11/, Eigen/...), copy those folders, and only
# those (the directory may be a shared prefix such as /usr/include), into
# <build folder>/stable-include/<name> and point the target at the copy instead, so that no compile
# command names the original. A directory holding none of them is left as it is.
function(fastelbo_stable_includes target name)
  set(folders ${ARGN})
  get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT dirs)
    return()
  endif()
  set(dest "${CMAKE_BINARY_DIR}/stable-include/${name}")
  set(result "")
  set(wanted "")  # every file the copy should hold, relative to ${dest}
  foreach(dir IN LISTS dirs)
    set(found "")
    if(NOT dir MATCHES "\\$<" AND IS_DIRECTORY "${dir}")  # generator expressions: left as they are
      foreach(folder IN LISTS folders)
        if(IS_DIRECTORY "${dir}/${folder}")
          list(APPEND found "${folder}")
        endif()
      endforeach()
    endif()
    if(NOT found)
      list(APPEND result "${dir}")
      continue()
    endif()
    set(made "")
    foreach(folder IN LISTS found)
      file(GLOB_RECURSE files LIST_DIRECTORIES false RELATIVE "${dir}" "${dir}/${folder}/*")
      foreach(file IN LISTS files)
        get_filename_component(parent "${dest}/${file}" DIRECTORY)
        if(NOT parent IN_LIST made)
          file(MAKE_DIRECTORY "${parent}")
          list(APPEND made "${parent}")
        endif()
        file(COPY_FILE "${dir}/${file}" "${dest}/${file}" ONLY_IF_DIFFERENT)
      endforeach()
      list(APPEND wanted ${files})
    endforeach()
    if(NOT "${dest}" IN_LIST result)
      list(APPEND result "${dest}")
    endif()
  endforeach()
  # Files an earlier copy had and this release has not: removed, so that an #include of a header
  # the package dropped fails as it would against the package itself.
  file(GLOB_RECURSE stale LIST_DIRECTORIES false RELATIVE "${dest}" "${dest}/*")
  if(wanted)
    list(REMOVE_ITEM stale ${wanted})
  endif()
  foreach(file IN LISTS stale)
    file(REMOVE "${dest}/${file}")
  endforeach()
  set_property(TARGET ${target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${result}")
endfunction()
