"""One way to read and write images: into [0, 1] for the enhancer and back in the *same* format, plus the
header-only sizes and raw values that the data checks need.

Built on MONAI's readers (``PILReader``, ``NibabelReader``, ``ITKReader``, ``PydicomReader``) for opening and
decoding; what they lack is hand-written, each module saying why: a NIfTI header kept unchanged for writing
back, header-only MHD / NIfTI sizes, the stored DICOM values and a derived DICOM series.

Enhancement must not cost the user their metadata: a NIfTI keeps its header and affine, an MHD its origin,
spacing and direction, a DICOM its patient / study tags (in a new, derived series), a PNG / JPEG its mode, bit
depth, ICC profile, EXIF and DPI. When the result is larger (super-resolution) the voxel size is divided by the
factor and the grid's origin moved so that the enhanced image covers exactly the same physical extent.

Intensity mapping (invertible; ``intensity="auto"`` by default):

- ``"dtype"``: the stored type's full range to [0, 1] (uint8: / 255, 16-bit PNG: / 65535, DICOM: the range
  of *Bits Stored*); consistent across images, so the network sees the same contrast scale in every file.
- ``"minmax"``: the image's own stored-value range (min -> 0, max -> 1); the only sensible choice for CT / MR
  numbers and floats, whose type range is far wider than the data.
- ``"auto"``: ``"dtype"`` for PNG / JPEG and for 8-bit data in any format, ``"minmax"`` otherwise.

Written values are mapped back with the same ``low`` / ``high``, rounded and clipped to the source's dtype, so an
identity network reproduces integer data exactly. DICOM values are *stored* values (before Rescale Slope /
Intercept, which are kept, so windows and HU stay valid); MONOCHROME1 is inverted so that bright means high
signal as in MONOCHROME2, and inverted back on writing; PALETTE COLOR is expanded to RGB.

Axis order: ``array`` is channel-first ``(C, H, W)`` for 2D images and ``(C, H, W, D, ...)`` for volumes, the
slice axis last so that a 2D network can enhance a volume slice by slice. PNG / JPEG / DICOM: rows, columns
(frames last). ITK (MHD / MHA / NRRD): ``(y, x, z)``. NIfTI: the file's own ``(i, j, k)`` voxel axes.
Nothing is resampled or reoriented (the readers' ``get_data``, which reorients to RAS, is not used for writing
back), so the written file's geometry is exactly the source's.

- :mod:`~monai_gradprom.io.base`: formats, :class:`EnhanceInput`, the intensity mapping, a zoomed grid;
- :mod:`~monai_gradprom.io.raster`, :mod:`~monai_gradprom.io.nifti`, :mod:`~monai_gradprom.io.itk_image`,
  :mod:`~monai_gradprom.io.dicom`: one module per format;
- :mod:`~monai_gradprom.io.image`: :func:`read_image`, :func:`write_like`, :func:`read_values`.
"""

from monai_gradprom.io.base import (
    INTENSITY_MODES,
    SUPPORTED_SUFFIXES,
    EnhanceInput,
    NotAnImageError,
    image_format,
    is_dicom,
)
from monai_gradprom.io.image import _READERS, _WRITERS, read_image, read_values, write_like  # noqa: F401 (tests patch)
from monai_gradprom.io.itk_image import metaimage_header, metaimage_shape
from monai_gradprom.io.nifti import nifti_shape
from monai_gradprom.io.raster import open_raster, raster_size

__all__ = [
    "EnhanceInput",
    "NotAnImageError",
    "SUPPORTED_SUFFIXES",
    "INTENSITY_MODES",
    "image_format",
    "is_dicom",
    "read_image",
    "write_like",
    "read_values",
    "open_raster",
    "raster_size",
    "metaimage_header",
    "metaimage_shape",
    "nifti_shape",
]
